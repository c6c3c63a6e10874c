"""Issue 17.6: sizes the memory cannot hold are refused up front; many classes stay bounded and are named."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import warnings

import pytest
from PIL import Image

from visiontune.data import ImageClassifierData
from visiontune.data.checks import batch_memory_bytes, check_size_fits
from visiontune.data.errors import ClassesWarning, SizeTooLargeError
from visiontune.transforms import tfms_from_model


def _jpeg(color=(120, 60, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buf, "JPEG")
    return buf.getvalue()


def _two_classes(root):
    for split in ("train", "valid"):
        for c, col in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(2):
                (d / f"{i}.jpg").write_bytes(_jpeg(col))
    return root


def test_batch_memory_estimate():
    assert batch_memory_bytes(224, 64) == 64 * 3 * 224 * 224 * 4 * 10
    check_size_fits(224, 64, available=10**9)  # 385 MB fits in 1 GB
    with pytest.raises(SizeTooLargeError) as e:
        check_size_fits(100_000, 32, available=24 * 10**9)
    assert str(e.value) == (
        "image size 100000 with batch size 32 needs at least 38.4 TB of memory for one batch (32 x 3 x 100000 x "
        "100000 float32 values and the first layers' activations), but 24.0 GB is available: use a smaller "
        "--size (sz; 224 is usual) or a smaller --bs")


def test_from_paths_refuses_a_huge_size_before_reading_any_image(tmp_path, monkeypatch):
    root = _two_classes(tmp_path / "ds")
    opened = []
    real = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real(p, *a, **k))
    with pytest.raises(SizeTooLargeError, match=r"^image size 100000 with batch size 8 needs at least 9\.6 TB"):
        ImageClassifierData.from_paths(root, bs=8, tfms=tfms_from_model("efficientnet_lite0", 100_000), num_workers=0)
    assert not [p for p in opened if p.endswith(".jpg")]


def test_train_cli_refuses_a_huge_size_in_one_line(tmp_path):
    root = _two_classes(tmp_path / "ds")
    out = subprocess.run([sys.executable, "-m", "visiontune", "train", str(root), "--size", "100000",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode != 0
    err = [line for line in (out.stdout + out.stderr).splitlines() if "error" in line]
    assert len(err) == 1 and "image size 100000 with batch size 32 needs at least 38.4 TB of memory" in err[0], err
    assert "Traceback" not in out.stderr


def test_many_classes_without_validation_images_are_counted_in_one_short_warning(tmp_path):
    """2,000 classes of one image each (issue 17.6 had 10,000): one line says how many classes have no
    validation image, naming ten, and building the data stays quick."""
    root = tmp_path / "ds"
    (root / "train").mkdir(parents=True)
    data = _jpeg()
    rows = ["id,label"]
    for i in range(2000):
        (root / "train" / f"im{i}.jpg").write_bytes(data)
        rows.append(f"im{i},c{i:05d}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        d = ImageClassifierData.from_csv(root, "train", "labels.csv", suffix=".jpg", num_workers=0,
                                         tfms=tfms_from_model("efficientnet_lite0", 32))
    assert time.perf_counter() - t < 60
    assert len(d.classes) == 2000 and len(d.val_ds) == 400
    msgs = [str(w.message) for w in rec if issubclass(w.category, ClassesWarning)]
    no_val = [m for m in msgs if "have no validation image" in m]
    assert len(no_val) == 1 and no_val[0].startswith("visiontune: 1600 of 2000 classes have no validation image, ['")
    assert no_val[0].count("'c0") == 10 and " and 1590 more: their accuracy is never measured." in no_val[0]
    no_trn = [m for m in msgs if "no usable training images" in m]
    assert len(no_trn) == 1 and len(no_trn[0]) < 400 and " and 390 more;" in no_trn[0]
