"""data.resize: shrunk copies, reuse, refresh when a source changes."""
from __future__ import annotations

import os
import time

import numpy as np
from PIL import Image
from vt_data_helpers import save_jpeg

from visiontune.data import ImageClassifierData
from visiontune.transforms import tfms_from_model

TFMS = tfms_from_model("resnet34", 16)


def _data(root):
    return ImageClassifierData.from_paths(root, bs=2, tfms=TFMS, test_name="test", num_workers=0)


def _build(tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "valid"):
        for c, col in (("cat", (200, 20, 20)), ("dog", (20, 20, 200))):
            for i in range(2):
                save_jpeg(root / split / c / f"{c}{i}.jpg", size=(80, 60), color=col)
    save_jpeg(root / "train" / "cat" / "small.jpg", size=(20, 20), color=(1, 2, 3))
    save_jpeg(root / "test" / "t0.jpg", size=(60, 90), color=(9, 9, 9))
    Image.new("RGBA", (64, 48), (0, 255, 0, 255)).save(root / "train" / "dog" / "alpha.png")
    return root


def test_resize_writes_reuses_and_refreshes(tmp_path):
    root = _build(tmp_path)
    data = _data(root)
    small = data.resize(32)
    dst = root / "tmp" / "32"
    assert small.path == str(dst)
    assert small.classes == data.classes and small.trn_ds.fnames == data.trn_ds.fnames
    assert list(small.trn_y) == list(data.trn_y) and small.val_ds.fnames == data.val_ds.fnames
    assert small.test_ds.fnames == ["test/t0.jpg"] and small.sz == data.sz
    assert small.trn_tfms is data.trn_tfms
    with Image.open(dst / "train/cat/cat0.jpg") as im:
        assert im.size == (43, 32) and im.format == "JPEG"
    with Image.open(dst / "test/t0.jpg") as im:
        assert im.size == (32, 48)
    with Image.open(dst / "train/dog/alpha.png") as im:
        assert im.format == "PNG" and min(im.size) == 32
    assert (dst / "train/cat/small.jpg").read_bytes() == (root / "train/cat/small.jpg").read_bytes()
    x, y = next(iter(small.val_dl))
    assert x.shape == (2, 3, 16, 16)

    copy = dst / "train/cat/cat0.jpg"
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")}
    time.sleep(0.01)
    again = data.resize(32)  # nothing changed: every copy reused
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")} == before
    assert again.trn_ds.fnames == small.trn_ds.fnames

    # change one source (new content, size and mtime): only its copy is rewritten
    src = root / "train/cat/cat0.jpg"
    save_jpeg(src, size=(120, 60), color=(250, 250, 250), noise=20)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    data.resize(32)
    after = {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")}
    assert after[copy] != before[copy]
    assert all(after[p] == before[p] for p in before if p != copy)
    with Image.open(copy) as im:
        assert im.size == (64, 32) and np.asarray(im).mean() > 200

    # a different target size lives in its own folder
    d24 = data.resize(24)
    with Image.open(root / "tmp/24/train/cat/cat0.jpg") as im:
        assert min(im.size) == 24
    assert d24.path.endswith(os.path.join("tmp", "24"))
    assert not list(root.glob("tmp/32/**/.*.tmp"))  # no temp files left behind
