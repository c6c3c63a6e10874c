"""File-system trouble: permissions, symlink loops, files deleted after the scan, odd names, odd classes."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image
from vt_zoo import CLASS_COLORS, jpeg_bytes, make_class_images

from visiontune.data import ImageClassifierData, ImageLoadError, inspect_dataset
from visiontune.data.errors import ClassesWarning, FileChangedWarning, SkippedFilesWarning, UnreadableFilesError
from visiontune.transforms import tfms_from_model

TFMS = tfms_from_model("efficientnet_lite0", 32)


def two_classes(root, n=4, classes=("red", "blue")):
    for split, seed in (("train", 0), ("valid", 100)):
        for c in classes:
            make_class_images(root / split / c, CLASS_COLORS.get(c, (120, 120, 120)), n, seed=seed)
    return root


@pytest.fixture
def deny_reads(monkeypatch):
    """Make files whose name contains 'locked' unreadable the way a chmod-000 file is (we run as root)."""
    real = Image.open

    def guarded(fp, *a, **k):
        if isinstance(fp, (str, os.PathLike)) and "locked" in os.fspath(fp):
            raise PermissionError(13, "Permission denied", os.fspath(fp))
        return real(fp, *a, **k)

    real_open = open

    def guarded_open(file, *a, **k):
        if isinstance(file, (str, os.PathLike)) and "locked" in os.fspath(file):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *a, **k)

    real_os_open = os.open

    def guarded_os_open(file, *a, **k):  # the decode path opens with os.open (O_NONBLOCK, then fstat)
        if "locked" in os.fspath(file):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_os_open(file, *a, **k)

    monkeypatch.setattr(Image, "open", guarded)
    monkeypatch.setattr("builtins.open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)


def test_unreadable_file_is_skipped_with_permission_reason(tmp_path, deny_reads):
    root = two_classes(tmp_path / "ds")
    (root / "train" / "red" / "locked.jpg").write_bytes(jpeg_bytes())
    with pytest.warns(SkippedFilesWarning, match=r"train/red/locked.jpg: permission denied"):
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    assert data.skipped == [("train/red/locked.jpg", "permission denied (check the file's read permission)")]
    with pytest.raises(UnreadableFilesError, match=r"train/red/locked.jpg: permission denied"):
        ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0, strict=True)
    rep = inspect_dataset(root)
    assert rep["unreadable"] == [{"file": "train/red/locked.jpg",
                                  "reason": "permission denied (check the file's read permission)"}]


def test_file_that_becomes_unreadable_mid_epoch_does_not_end_it(tmp_path, monkeypatch):
    root = two_classes(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, bs=3, tfms=TFMS, num_workers=0)
    victim = data.trn_ds.fnames[2]
    (root / victim).rename(root / victim.replace(".jpg", "-locked.jpg"))
    (root / victim).symlink_to(root / victim.replace(".jpg", "-locked.jpg"))
    real = os.open

    def guarded(fp, *a, **k):
        if os.fspath(fp).endswith(victim):
            raise PermissionError(13, "Permission denied", os.fspath(fp))
        return real(fp, *a, **k)

    monkeypatch.setattr(os, "open", guarded)
    with pytest.warns(FileChangedWarning, match=f"{victim}: permission denied") as rec:
        n = sum(len(y) for _, y in data.fix_dl) + sum(len(y) for _, y in data.fix_dl)  # two passes
    assert n == 2 * len(data.trn_ds)
    assert len([r for r in rec if issubclass(r.category, FileChangedWarning)]) == 1  # once per file
    assert data.trn_ds.failed == {victim: "permission denied (check the file's read permission)"}


def test_file_deleted_between_listing_and_loading(tmp_path):
    """Built, then a file vanishes: every loader finishes its epoch; the item is a blank stand-in."""
    root = two_classes(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, bs=3, tfms=TFMS, num_workers=0)
    i = data.trn_ds.fnames.index("train/red/img1.jpg")
    (root / "train/red/img1.jpg").unlink()
    with pytest.warns(FileChangedWarning) as rec:
        xs = [x for x, _ in data.fix_dl]
    [w] = [r for r in rec if issubclass(r.category, FileChangedWarning)]
    msg = str(w.message)
    assert msg.startswith(f"visiontune: {root / 'train/red/img1.jpg'}: file not found") and "\n" not in msg
    x = np.concatenate([t.numpy() for t in xs])
    assert x.shape[0] == len(data.trn_ds)
    np.testing.assert_allclose(x[i], 0.0, atol=0.02)  # the mean colour normalises to ~0
    assert np.abs(x[i - 1]).max() > 0.1  # its neighbours are real images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sum(len(y) for _, y in data.trn_dl) > 0  # the shuffled training loader too
    strict = ImageClassifierData.from_paths(root, bs=3, tfms=TFMS, num_workers=0, strict=True)
    (root / strict.trn_ds.fnames[0]).unlink()
    with pytest.raises(ImageLoadError, match="file not found"):
        list(strict.fix_dl)


def test_file_deleted_mid_epoch_with_worker_processes(tmp_path):
    """The same with 2 loader workers (the warning is printed by the worker; the epoch completes)."""
    root = two_classes(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, bs=3, tfms=TFMS, num_workers=2)
    (root / data.trn_ds.fnames[0]).unlink()
    assert sum(len(y) for _, y in data.fix_dl) == len(data.trn_ds)


def test_symlink_loops(tmp_path):
    root = two_classes(tmp_path / "ds")
    os.symlink("loop.jpg", root / "train" / "red" / "loop.jpg")  # a file link to itself
    os.symlink("b.jpg", root / "train" / "red" / "a.jpg")
    os.symlink("a.jpg", root / "train" / "red" / "b.jpg")  # a two-link cycle
    os.symlink("..", root / "train" / "red" / "up")  # a folder loop: never followed
    os.symlink(".", root / "train" / "blue" / "self.jpg")  # a folder named like an image
    with pytest.warns(SkippedFilesWarning) as rec:
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    text = str([r for r in rec if issubclass(r.category, SkippedFilesWarning)][0].message)
    for name in ("loop.jpg", "a.jpg", "b.jpg"):
        assert f"train/red/{name}: symbolic link loop" in text
    assert len(data.trn_ds) == 8 and "self.jpg" not in text
    rep = inspect_dataset(root)
    loops = {u["file"] for u in rep["unreadable"] if "symbolic link loop" in u["reason"]}
    assert loops == {"train/red/loop.jpg", "train/red/a.jpg", "train/red/b.jpg"}
    assert rep["splits"]["train"] == {"blue": 4, "red": 7}  # the folder loop was not walked


def test_non_utf8_and_unicode_file_names(tmp_path):
    root = two_classes(tmp_path / "ds")
    red = os.fsencode(root / "train" / "red")
    with open(red + b"/caf\xe9-latin1.jpg", "wb") as f:  # not valid UTF-8
        f.write(jpeg_bytes())
    with open(red + b"/broken\xff.jpg", "wb") as f:  # not valid UTF-8, and empty
        pass
    make_class_images(root / "train" / "red", (200, 40, 40), 1, prefix="ñandú 🐦 ")
    with pytest.warns(SkippedFilesWarning) as rec:
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    text = str([r for r in rec if issubclass(r.category, SkippedFilesWarning)][0].message)
    assert "train/red/broken\\xff.jpg: empty file (0 bytes)" in text  # the bytes shown, printable anywhere
    text.encode("utf-8")
    names = set(data.trn_ds.fnames)
    assert "train/red/ñandú 🐦 0.jpg" in names and os.fsdecode(b"train/red/caf\xe9-latin1.jpg") in names
    assert sum(len(y) for _, y in data.fix_dl) == 10
    from visiontune.features.cache import fingerprint_files

    assert len(fingerprint_files(data.trn_ds.file_fingerprint())) == 24  # cache keys hash odd names
    rep = inspect_dataset(root)
    from visiontune.data import format_inspection

    out = format_inspection(rep)
    out.encode("utf-8")  # printable: no lone surrogates
    assert "train/red/broken\\xff.jpg: empty file" in out
    # and printed with verbose=True to a strict UTF-8 terminal
    import contextlib
    import io

    term = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    with contextlib.redirect_stdout(term):
        inspect_dataset(root, verbose=True)
    term.flush()
    assert b"train/red/broken\\xff.jpg: empty file (0 bytes)" in term.buffer.getvalue()


def test_empty_class_folder_is_named(tmp_path):
    root = two_classes(tmp_path / "ds")
    (root / "train" / "green").mkdir()
    with pytest.warns(ClassesWarning, match=r"class\(es\) with no usable training images: \['green'\]"):
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    assert data.classes == ["blue", "green", "red"] and data.c == 3  # folder order = class index, as in the lesson
    assert "train/green" in inspect_dataset(root)["empty_folders"]


def test_class_left_empty_by_skipped_files_is_named(tmp_path):
    root = two_classes(tmp_path / "ds", n=2)
    for p in (root / "train" / "blue").iterdir():
        p.write_bytes(b"")
    with pytest.warns(ClassesWarning, match=r"only one class with usable training images .*'red'.*none in \['blue'\]"), \
            pytest.warns(SkippedFilesWarning, match="train/blue/img0.jpg: empty file"):
        ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)


def test_single_class(tmp_path):
    root = tmp_path / "ds"
    make_class_images(root / "train" / "images", (1, 2, 3), 3)
    make_class_images(root / "valid" / "images", (1, 2, 3), 2)
    with pytest.warns(ClassesWarning, match=r"only one class with usable training images .*\('images'\): "
                                            r"a classifier needs at least two classes"):
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    assert data.c == 1


def test_class_names_with_spaces(tmp_path):
    root = two_classes(tmp_path / "ds", classes=("golden retriever", "border collie"))
    data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    assert data.classes == ["border collie", "golden retriever"]
    assert "train/golden retriever/img0.jpg" in data.trn_ds.fnames
    assert sorted(inspect_dataset(root)["class_counts"]) == ["border collie", "golden retriever"]


# ---------------------------------------------------------------------------------------------
# issue 17.5: special files never hang (run in a child so that a regression fails instead of hanging)
# ---------------------------------------------------------------------------------------------
_SPECIAL_CHILD = r"""
import json, sys, warnings
from visiontune.data import ImageClassifierData, inspect_dataset
from visiontune.data.errors import SkippedFilesWarning
from visiontune.transforms import tfms_from_model
root = sys.argv[1]
rep = inspect_dataset(root)
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    data = ImageClassifierData.from_paths(root, tfms=tfms_from_model("efficientnet_lite0", 32), num_workers=0)
print(json.dumps({"unreadable": rep["unreadable"], "skipped": [list(s) for s in data.skipped],
                  "n_train": len(data.trn_ds),
                  "warned": [str(r.message) for r in rec if issubclass(r.category, SkippedFilesWarning)]}))
"""


def test_fifo_and_link_to_dev_zero_are_skipped_without_hanging(tmp_path):
    import json
    import subprocess
    import sys

    root = two_classes(tmp_path / "ds")
    os.mkfifo(root / "train" / "red" / "pipe.jpg")
    os.symlink("/dev/zero", root / "train" / "blue" / "zero.jpg")
    try:
        out = subprocess.run([sys.executable, "-c", _SPECIAL_CHILD, str(root)], capture_output=True, text=True,
                             timeout=120, check=True).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("inspect / from_paths hung on a FIFO or a link to /dev/zero")
    got = json.loads(out.strip().splitlines()[-1])
    fifo = "not a regular file: a named pipe (FIFO); only regular files are read"
    zero = ("not a regular file: a character device (such as /dev/zero, perhaps through a symbolic link); "
            "only regular files are read")
    assert sorted(map(tuple, (u.values() for u in got["unreadable"]))) == [
        ("train/blue/zero.jpg", zero), ("train/red/pipe.jpg", fifo)]
    assert sorted(map(tuple, got["skipped"])) == [("train/blue/zero.jpg", zero), ("train/red/pipe.jpg", fifo)]
    assert got["n_train"] == 8
    assert "train/red/pipe.jpg: not a regular file" in got["warned"][0]


def test_open_image_refuses_special_files_at_once(tmp_path):
    import signal

    from visiontune.imaging.decode import open_image
    from visiontune.imaging.limits import read_bytes
    from visiontune.imaging.probe import image_header, probe_image

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    os.symlink("/dev/zero", tmp_path / "zero.png")
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("blocked on a special file")))
    signal.alarm(30)  # a regression fails here instead of hanging the suite
    try:
        for f in (fifo, tmp_path / "zero.png"):
            for call in (open_image, image_header, read_bytes):
                with pytest.raises(ImageLoadError, match="not a regular file"):
                    call(f)
            assert probe_image(f).startswith("not a regular file")
    finally:
        signal.alarm(0)


def test_byte_cap_is_checked_before_reading(tmp_path):
    from visiontune.imaging.decode import open_image

    p = tmp_path / "big.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(p)
    size = p.stat().st_size
    with pytest.raises(ImageLoadError, match=r"file too large: 0\.0 MiB, over the cap of 0 MiB"):
        open_image(p, max_bytes=size - 1)
    assert open_image(p, max_bytes=size).getpixel((0, 0)) == (1, 2, 3)
