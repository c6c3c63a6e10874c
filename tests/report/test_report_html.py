from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from visiontune.report import SECTIONS, write_report
from visiontune.report import figures

IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]*)\"")
PNG_PREFIX = "data:image/png;base64,"


def _check_images(text: str) -> int:
    srcs = IMG_SRC.findall(text)
    for src in srcs:
        assert src.startswith(PNG_PREFIX), src[:60]
        with Image.open(io.BytesIO(base64.b64decode(src[len(PNG_PREFIX):], validate=True))) as im:
            assert im.format == "PNG"
            im.load()
            assert im.width > 0 and im.height > 0
    return len(srcs)


def test_full_report(run_folder):
    out = write_report(run_folder)
    assert out == run_folder / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    assert "Not available" not in text  # every input exists
    # class counts, sizes, previews, 2 lr_find, schedule, history, confusion + top-loss thumbnails
    n_img = _check_images(text)
    assert n_img >= 9 + 1
    assert "http" not in IMG_SRC.sub("", text).lower()  # (base64 image data may spell anything)
    assert "<script" not in text.lower()
    assert "steepest descent / 10" in text  # the lr_find rule is named
    assert "actual <b>" in text  # top-loss captions
    assert len(text.encode()) < 2_000_000


def test_custom_out_path(run_folder, tmp_path):
    out = write_report(run_folder, out=tmp_path / "elsewhere" / "r.html")
    assert out.is_file() and not (run_folder / "report.html").exists()


def test_empty_run_folder(tmp_path):
    out = write_report(tmp_path)
    text = out.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    assert text.count("Not available") == len(SECTIONS)
    assert _check_images(text) == 0


def test_partial_and_damaged_run_folder(run_folder):
    (run_folder / "lr_find.json").write_text("{not json")
    (run_folder / "aug_previews.png").write_bytes(b"not a png")
    (run_folder / "data_summary.json").unlink()
    for p in (run_folder.parent / "data").rglob("*.jpg"):  # thumbnails missing -> skipped
        p.unlink()
    text = write_report(run_folder).read_text()
    assert "Not available: lr_find.json is missing" in text
    assert "could not build this section" in text  # the broken PNG
    assert "images not found" in text
    assert "<h2>Confusion matrix</h2>" in text
    _check_images(text)


def test_multi_label_run_skips_confusion(run_folder):
    pre = (run_folder / "preprocessing.json").read_text().replace('"single"', '"multi"')
    (run_folder / "preprocessing.json").write_text(pre)
    text = write_report(run_folder).read_text()
    assert "applies to single-label runs" in text
    _check_images(text)


def test_integer_targets_and_relative_thumbnails(run_folder):
    # targets/preds written as class indices are understood too
    import csv

    rows = list(csv.DictReader(open(run_folder / "val_predictions.csv")))
    classes = ["ants", "bees", "wasps"]
    with open(run_folder / "val_predictions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            r["target"], r["pred"] = classes.index(r["target"]), classes.index(r["pred"])
            w.writerow(r)
    text = write_report(run_folder).read_text()
    assert "Accuracy" in text and "actual <b>" in text


@pytest.mark.parametrize("n", [2, 25, 120])
def test_confusion_figure_scales(n):
    import numpy as np

    cm = np.random.default_rng(0).integers(0, 5, (n, n))
    png = figures.fig_to_png_bytes(figures.fig_confusion_matrix(cm, [f"c{i}" for i in range(n)]))
    assert png[:4] == b"\x89PNG" and len(png) < 400_000


def test_large_previews_are_shrunk(run_folder):
    import numpy as np

    noise = np.random.default_rng(1).integers(0, 255, (1000, 1000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(run_folder / "aug_previews.png")
    assert (run_folder / "aug_previews.png").stat().st_size > 2_000_000
    text = write_report(run_folder).read_text()
    _check_images(text)
    assert len(text.encode()) < 2_000_000
