"""Audit of the inference layer: model.json validation, thin images, unreadable folders, odd file names."""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visiontune.infer import exported as exported_mod
from visiontune.infer.export import export_model
from visiontune.infer.exported import ExportedModel
from visiontune.infer.predict import format_predictions, predict_paths
from visiontune.infer.submit import make_submission

PRE = {"input_size": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bilinear", "crop_pct": 0.875}


def tiny(n_out: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, n_out), nn.LogSoftmax(1)).eval()


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx2")
    export_model(tiny(2), d, preprocessing=PRE, classes=["cat", "dog"])
    return d


def with_meta(src: Path, dst: Path, text: str | bytes | None = None, **changes) -> Path:
    """A copy of the export in ``src`` whose model.json is ``text`` or the original with ``changes``."""
    dst.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "model.json").read_text())
    shutil.copy(src / meta["file"], dst / meta["file"])
    if text is None:
        text = json.dumps({**meta, **changes})
    (dst / "model.json").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return dst


def save_rgb(path: Path, w: int, h: int, seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


# ---- 1. model.json values ----------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("classes", []), ("classes", "cat,dog"), ("classes", [1, 2]), ("classes", ["cat", "cat"]),
    ("input_size", 0), ("input_size", -32), ("input_size", "32"), ("input_size", 32.5), ("input_size", True),
    ("crop_pct", 0), ("crop_pct", 1.5), ("crop_pct", "0.9"), ("crop_pct", float("nan")), ("crop_pct", None),
    ("mean", [0.5, 0.5]), ("mean", ["a", "b", "c"]), ("mean", 0.5), ("mean", [0.5, float("inf"), 0.5]),
    ("std", [0.2, 0.0, 0.2]), ("std", [0.2, 0.2, 0.2, 0.2]), ("std", {"r": 1}),
    ("kind", "binary"), ("kind", 3), ("input_name", 7),
])
def test_model_json_values_are_checked(onnx_dir, tmp_path, key, value):
    run = with_meta(onnx_dir, tmp_path / "run", **{key: value})
    with pytest.raises(ValueError, match=rf"invalid {key} in .*model\.json: .*export the model again"):
        ExportedModel.load(run)


@pytest.mark.parametrize("value", ["cubic", 3, None, ["bilinear"]])
def test_model_json_interpolation_is_checked(onnx_dir, tmp_path, value):
    run = with_meta(onnx_dir, tmp_path / "run", interpolation=value)
    with pytest.raises(ValueError, match=r"Invalid interpolation .* in .*model\.json\. Only nearest, bilinear"):
        ExportedModel.load(run)


@pytest.mark.parametrize("fmt,name", [(3, "model.onnx"), ("onnx", 3), ("onnx", ["model.onnx"])])
def test_model_json_format_and_file_are_checked(onnx_dir, tmp_path, fmt, name):
    run = with_meta(onnx_dir, tmp_path / "run", format=fmt, file=name)
    with pytest.raises(ValueError, match=r"(Invalid format|Invalid name) .* in .*model\.json"):
        ExportedModel.load(run)


@pytest.mark.parametrize("text", ["3", '"model"', "[1, 2]", "null"])
def test_model_json_must_be_an_object(onnx_dir, tmp_path, text):
    run = with_meta(onnx_dir, tmp_path / "run", text)
    with pytest.raises(ValueError, match=r"cannot read .*model\.json: it holds a JSON \w+, not an object .*"
                                         r"\(damaged\? export again\)"):
        ExportedModel.load(run)


def test_model_json_damaged(onnx_dir, tmp_path):
    good = (onnx_dir / "model.json").read_text()
    cases = {"truncated": (good[: len(good) // 2], "invalid JSON at line"),
             "empty": ("", "the file is empty"),
             "latin1": (good.replace('"cat"', '"caf\xe9"').encode("latin-1"), "not UTF-8 text")}
    for name, (text, reason) in cases.items():
        run = with_meta(onnx_dir, tmp_path / name, text)
        with pytest.raises(ValueError, match=rf"^cannot read \S*model\.json: {reason}.*\(damaged\? export again\)$"):
            ExportedModel.load(run)


def test_model_json_with_a_bom_loads(onnx_dir, tmp_path):
    text = (onnx_dir / "model.json").read_text()
    run = with_meta(onnx_dir, tmp_path / "run", b"\xef\xbb\xbf" + text.encode("utf-8"))
    m = ExportedModel.load(run)
    assert m.classes == ["cat", "dog"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("classes", [["a", "b", "c"], ["a"]])
def test_class_count_must_match_the_model_output(tmp_path, fmt, classes):
    """3 names for a 2-output model printed wrong labels (exit 0); 1 name gave an IndexError."""
    export_model(tiny(2), tmp_path, preprocessing=PRE, classes=classes, fmt=fmt)
    with pytest.raises(ValueError, match=rf"outputs 2 value\(s\) per image but \S*model\.json names "
                                         rf"{len(classes)} class\(es\) \({', '.join(classes)}\); the model file and "
                                         r"its model\.json do not belong together; export the model again"):
        ExportedModel.load(tmp_path)


def test_class_count_checked_with_a_dynamic_onnx_output(onnx_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    g = onnx.load(str(onnx_dir / "model.onnx"))
    g.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "n_classes"  # width unknown until run
    run = with_meta(onnx_dir, tmp_path / "run", classes=["a", "b", "c"])
    onnx.save(g, str(run / "model.onnx"))
    with pytest.raises(ValueError, match=r"outputs 2 value\(s\) per image but .*names 3 class"):
        ExportedModel.load(run)
    (run / "model.json").write_text(json.dumps({**json.loads((run / "model.json").read_text()),
                                                "classes": ["a", "b"]}))
    assert ExportedModel.load(run).predict_batch(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 2)


def test_input_size_must_match_the_onnx_graph(onnx_dir, tmp_path):
    run = with_meta(onnx_dir, tmp_path / "run", input_size=64)
    with pytest.raises(ValueError, match=r"takes inputs of shape \?x3x32x32, but \S*model\.json says input_size 64"):
        ExportedModel.load(run)


def test_cli_predict_with_mismatched_classes_is_a_one_line_error(tmp_path, capsys):
    from visiontune.cli import main

    export_model(tiny(2), tmp_path / "run", preprocessing=PRE, classes=["a", "b", "c"])
    img = save_rgb(tmp_path / "x.png", 40, 30)
    rc = main(["predict", str(tmp_path / "run"), str(img)])
    err = capsys.readouterr().err
    assert rc != 0 and "visiontune: error: " in err and "names 3 class(es)" in err and "internal" not in err


# ---- 2. thin images -----------------------------------------------------------------------------
def plain_views(m: ExportedModel, path) -> list[np.ndarray]:
    """The preprocessing before the aspect bound (the docstring's plain path), TTA views included."""
    rs = exported_mod._resample(m.interpolation)
    with Image.open(path) as im:
        im = im.convert("RGB")

    def crop(short):  # torchvision's resize + centre crop, as one resize of the crop's source box
        w, h = im.size
        nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        left, top = int(round((nw - m.input_size) / 2.0)), int(round((nh - m.input_size) / 2.0))
        box = (left * w / nw, top * h / nh, (left + m.input_size) * w / nw, (top + m.input_size) * h / nh)
        return im.resize((m.input_size, m.input_size), rs, box=box)

    c, z = crop(m.resize_size), crop(max(m.input_size, round(m.resize_size * exported_mod.TTA_ZOOM)))
    f = Image.Transpose.FLIP_LEFT_RIGHT
    return [m._to_array(v) for v in (c, c.transpose(f), z, z.transpose(f), crop(m.input_size))]


@pytest.fixture(scope="module")
def model224(tmp_path_factory):
    d = tmp_path_factory.mktemp("m224")
    export_model(tiny(2), d, preprocessing={**PRE, "input_size": 224, "interpolation": "bicubic"},
                 classes=["cat", "dog"])
    return ExportedModel.load(d)


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (90, 20), (17, 136)])
def test_ordinary_aspect_ratios_are_bit_identical(onnx_dir, model224, tmp_path, size):
    p = save_rgb(tmp_path / "img.png", *size)
    for m in (ExportedModel.load(onnx_dir), model224):
        got = m.views(p, tta=True)
        want = plain_views(m, p)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert np.array_equal(m.preprocess([p])[0], want[0])


@pytest.mark.parametrize("w,h", [(1, 30000), (30000, 1), (3, 4000)])
def test_thin_images_stay_small(model224, tmp_path, monkeypatch, w, h):
    """A 1x30000 PNG used to be resized to 256 x 7.7M pixels (about 6 GB) before the centre crop."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 2] = 255  # blue, with a red centre: what the crops keep
    if h > w:
        arr[h // 2 - 20: h // 2 + 20] = (255, 0, 0)
    else:
        arr[:, w // 2 - 20: w // 2 + 20] = (255, 0, 0)
    p = tmp_path / "thin.png"
    Image.fromarray(arr).save(p)
    assert p.stat().st_size < 100_000

    biggest = []
    resize = Image.Image.resize

    def checked_resize(self, size, *a, **k):
        biggest.append(size[0] * size[1])
        assert size[0] * size[1] <= 16 * 300 * 300, f"resize to {size} is a memory bomb"
        return resize(self, size, *a, **k)

    monkeypatch.setattr(Image.Image, "resize", checked_resize)
    views = model224.views(p, tta=True)
    assert len(views) == 5 and all(v.shape == (3, 224, 224) for v in views)
    red = model224._to_array(Image.new("RGB", (224, 224), (255, 0, 0)))
    for v in views:
        np.testing.assert_allclose(v, red, atol=1e-5)
    assert model224.predict_images([p]).shape == (1, 2)


def test_docstring_mentions_the_aspect_bound():
    assert "MAX_ASPECT" in exported_mod.__doc__ and exported_mod.MAX_ASPECT >= 4


# ---- 3. nothing readable ------------------------------------------------------------------------
def test_predict_folder_without_a_readable_image_is_an_error(onnx_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg at all")
    (folder / "b.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"^no readable images among 2 file\(s\) in \S*photos: \S*a\.jpg: "):
        predict_paths(onnx_dir, [folder], top_k=3)


def test_cli_predict_folder_without_a_readable_image(onnx_dir, tmp_path, capsys):
    from visiontune.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"GIF89a garbage")
    out = tmp_path / "preds.csv"
    rc = main(["predict", str(onnx_dir), str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "visiontune: error: no readable images among 1 file(s) in" in err
    assert not out.exists()


def test_csv_header_has_at_most_one_label_per_class(onnx_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    save_rgb(folder / "ok.png", 40, 30)
    (folder / "bad.jpg").write_bytes(b"junk")
    rows = predict_paths(onnx_dir, [folder], top_k=5)
    assert [Path(r["file"]).name for r in rows] == ["ok.png"] and len(rows[0]["top"]) == 2
    text = format_predictions(rows, "csv", top_k=5)
    assert text.splitlines()[0] == "file,label_1,prob_1,label_2,prob_2"


# ---- 4. file names that are not UTF-8 -----------------------------------------------------------
@pytest.fixture
def odd_folder(tmp_path):
    if sys.platform == "win32" or sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        pytest.skip("needs a POSIX file system with UTF-8 file names")
    folder = tmp_path / "test"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.jpg")
    assert odd == "caf\udce9.jpg"
    for i, name in enumerate([odd, "10.jpg", "2.jpg", "1.jpg"]):
        save_rgb(folder / name, 40, 30, seed=i)
    assert os.fsencode(str(folder / odd)).endswith(b"caf\xe9.jpg") and (folder / odd).is_file()
    return folder


def test_submission_with_a_non_utf8_file_name(onnx_dir, odd_folder, tmp_path):
    out = make_submission(onnx_dir, odd_folder, tmp_path / "sub.csv")
    data = out.read_bytes()
    assert b"caf\xe9" in data
    lines = data.split(b"\n")
    assert lines[0] == b"id,cat,dog" and [ln.split(b",")[0] for ln in lines[1:5]] == [b"1", b"2", b"10", b"caf\xe9"]
    binary = make_submission(onnx_dir, odd_folder, tmp_path / "bin.csv", binary=True).read_bytes()
    assert b"\ncaf\xe9," in binary


def test_predict_with_a_non_utf8_file_name(onnx_dir, odd_folder, tmp_path):
    from visiontune.utils.atomic import atomic_write_text

    rows = predict_paths(onnx_dir, [odd_folder], top_k=2, tta=True)
    assert len(rows) == 4 and any(r["file"].endswith("caf\udce9.jpg") for r in rows)
    for fmt in ("csv", "json"):
        text = format_predictions(rows, fmt, top_k=2)
        atomic_write_text(tmp_path / f"preds.{fmt}", text)
    assert b"caf\xe9.jpg" in (tmp_path / "preds.csv").read_bytes()
    back = json.loads((tmp_path / "preds.json").read_text())  # JSON escapes the odd byte: still valid text
    assert any(r["file"].endswith("caf\udce9.jpg") for r in back)
    assert all(math.isclose(sum(t["prob"] for t in r["top"]), 1.0, abs_tol=1e-5) for r in back)
