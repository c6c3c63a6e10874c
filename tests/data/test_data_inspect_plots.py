"""inspect_dataset / format_inspection, and plots()."""
from __future__ import annotations

import io
import shutil

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from vt_data_helpers import jpeg_bytes, make_folder_dataset

from visiontune.data import inspect_dataset
from visiontune.data.inspect import format_inspection
from visiontune.report.plots import plots


def test_inspect_generated(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", n_trn=3, n_val=2)
    shutil.copy(root / "train/cat/cat0.jpg", root / "train/dog/copy_of_cat.jpg")
    Image.new("P", (40, 40)).save(root / "train/cat/placeholder.gif")
    Image.new("RGB", (20, 10)).save(root / "train/cat/png_named.jpg", format="PNG")
    data = jpeg_bytes()
    (root / "train/dog/cut.jpg").write_bytes(data[: len(data) // 2])
    (root / "tmp").mkdir()
    shutil.copy(root / "train/cat/cat0.jpg", root / "tmp/ignored.jpg")
    rep = inspect_dataset(root, out_dir=tmp_path / "out")
    assert rep["n_files"] == 3 * 2 + 2 * 2 + 4
    assert rep["splits"]["train"] == {"cat": 5, "dog": 5} and rep["class_counts"] == {"cat": 5, "dog": 5}
    assert rep["splits"]["valid"] == {"cat": 2, "dog": 2}
    assert rep["unreadable"] == [{"file": "train/dog/cut.jpg", "reason": rep["unreadable"][0]["reason"]}]
    assert "truncated" in rep["unreadable"][0]["reason"]
    # (the generator reuses seeds, so train/valid copies are byte-identical too)
    assert any({"train/cat/cat0.jpg", "train/dog/copy_of_cat.jpg"} <= set(g) for g in rep["duplicates"])
    odd = {o["file"]: o for o in rep["odd_formats"]}
    assert odd["train/cat/placeholder.gif"]["format"] == "GIF"
    assert odd["train/cat/png_named.jpg"]["format"] == "PNG"
    assert rep["sizes"]["width"]["min"] == 20 and rep["sizes"]["width"]["max"] == 64  # the truncated file's header
    assert rep["small"] == ["train/cat/png_named.jpg"]
    for p in rep["histograms"]:
        with Image.open(p) as im:
            assert im.format == "PNG"
    text = format_inspection(rep)
    for s in ("train/dog/cut.jpg", "placeholder.gif", "copy_of_cat.jpg", "cat ", "median"):
        assert s in text


def test_inspect_hymenoptera_flags_the_gif():
    from vt_data_helpers import hymenoptera

    rep = inspect_dataset(hymenoptera())
    assert rep["n_files"] == 398 and rep["splits"]["train"] == {"ants": 124, "bees": 121}
    assert any(o["file"] == "train/ants/imageNotFound.gif" for o in rep["odd_formats"])
    assert rep["unreadable"] == []


def test_inspect_csv_layout(tmp_path):
    root = tmp_path / "ds"
    (root / "train").mkdir(parents=True)
    for i in range(3):
        (root / "train" / f"im{i}.jpg").write_bytes(jpeg_bytes(seed=i))
    (root / "labels.csv").write_text("id,tags\nim0,a b\nim1,b\nim2,a\nim9,b\n")
    rep = inspect_dataset(root, csv="labels.csv", suffix=".jpg")
    assert rep["class_counts"] == {"b": 3, "a": 2} and rep["missing"] == ["train/im9.jpg"]


def test_plots_returns_a_figure():
    ims = np.random.default_rng(0).random((6, 16, 16, 3)).astype(np.float32)
    fig = plots(ims, rows=2, titles=[str(i) for i in range(6)], maintitle="augs")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert fig.axes[5].get_title() == "5"
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    assert len(plots(ims[:3]).axes) == 3  # rows=1
