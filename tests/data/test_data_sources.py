"""ImageClassifierData.from_paths / from_arrays, loaders, skipping of unreadable files, get_cv_idxs."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from vt_data_helpers import jpeg_bytes, make_folder_dataset, save_jpeg

from visiontune.data import ImageClassifierData, get_cv_idxs
from visiontune.data.errors import SkippedFilesWarning, UnreadableFilesError
from visiontune.transforms import tfms_from_model, transforms_side_on

TFMS = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.1)


def test_get_cv_idxs_matches_the_notes():
    for n in (10, 1000, 10222):
        np.random.seed(42)
        perm = np.random.permutation(n)
        n_val = int(0.2 * n)
        np.testing.assert_array_equal(get_cv_idxs(n), perm[4 * n_val:5 * n_val])
    v = get_cv_idxs(10222)  # printed in the notes: array([3694, 1573, 6281, ..., 5734, 5191, 5390])
    assert list(v[:3]) == [3694, 1573, 6281] and list(v[-3:]) == [5734, 5191, 5390] and len(v) == 2044
    np.random.seed(7)
    expected = np.random.permutation(50)[0:5]
    np.testing.assert_array_equal(get_cv_idxs(50, cv_idx=0, val_pct=0.1, seed=7), expected)


def test_from_paths_basic(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", classes=("dog", "cat"), test_n=4)
    data = ImageClassifierData.from_paths(root, bs=4, tfms=TFMS, test_name="test", num_workers=0)
    assert data.classes == ["cat", "dog"] and data.c == 2
    assert not data.is_multi and not data.is_reg and data.sz == 32 and data.bs == 4
    assert len(data.trn_ds) == 12 and len(data.val_ds) == 6 and len(data.test_ds) == 4
    assert data.trn_ds.fnames[0] == "train/cat/cat0.jpg"
    assert (root / data.trn_ds.fnames[0]).is_file() and data.path == str(root)
    assert list(data.trn_y) == [0] * 6 + [1] * 6 and data.val_y.dtype == np.int64
    assert data.test_ds.fnames[0] == "test/t0.jpg"
    assert data.skipped == []
    fp = data.trn_ds.file_fingerprint()
    assert fp[0][0] == "train/cat/cat0.jpg" and fp[0][1] > 0 and fp[0][2] > 0


def test_loaders_shapes_dtypes_and_roles(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", test_n=3)
    data = ImageClassifierData.from_paths(root, bs=5, tfms=TFMS, test_name="test", num_workers=0)
    x, y = next(iter(data.trn_dl))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(data.trn_dl) == 12 // 5  # drop_last: 12 items > bs
    assert len(data.val_dl) == 2 and len(data.fix_dl) == 3 and len(data.aug_dl) == 2 and len(data.test_dl) == 1
    xs, ys = zip(*data.val_dl)
    assert torch.cat(ys).tolist() == data.val_y.tolist()  # not shuffled
    assert xs[0].dtype == torch.float32 and tuple(xs[-1].shape) == (1, 3, 32, 32)
    # normalised with the transforms' stats: mean around (c/255 - mean)/std for the solid colours
    assert abs(float(x.mean())) < 3
    # fix_dl: training images, validation transforms, in order -> deterministic
    a = torch.cat([b for b, _ in data.fix_dl])
    b = torch.cat([b for b, _ in data.fix_dl])
    assert torch.equal(a, b) and a.shape[0] == 12
    assert torch.cat([y for _, y in data.fix_dl]).tolist() == data.trn_y.tolist()
    # aug_dl: validation images with training (random) transforms
    assert data.aug_dl.dataset.fnames == data.val_ds.fnames and data.aug_dl.dataset.transform.train
    assert not data.fix_dl.dataset.transform.train and data.fix_dl.dataset.fnames == data.trn_ds.fnames
    assert data.test_aug_dl.dataset.transform.train
    assert data.trn_dl.batch_size == 5 and data.trn_dl.dataset is data.trn_ds
    # shuffled training order
    torch.manual_seed(0)
    order1 = torch.cat([y for _, y in data.trn_dl]).tolist()
    assert sorted(order1) != order1 or len(set(order1)) == 1


def test_denorm_round_trip_through_the_loader(tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "valid"):
        save_jpeg(root / split / "a" / "x.png", size=(32, 32), color=(10, 120, 240))
    data = ImageClassifierData.from_paths(root, bs=1, tfms=TFMS, num_workers=0)
    x, _ = next(iter(data.val_dl))
    ims = data.trn_ds.denorm(x)
    assert ims.shape == (1, 32, 32, 3) and 0 <= ims.min() and ims.max() <= 1
    np.testing.assert_allclose(ims[0, 16, 16] * 255, [10, 120, 240], atol=1.0)
    assert data.val_ds.denorm(x[0]).shape == (32, 32, 3)


def test_notes_get_augs_pattern(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", val_name="valid")

    def get_augs():
        data = ImageClassifierData.from_paths(root, bs=2, tfms=TFMS, num_workers=1)
        x, _ = next(iter(data.aug_dl))
        return data.trn_ds.denorm(x)[1]

    ims = np.stack([get_augs() for _ in range(2)])
    assert ims.shape == (2, 32, 32, 3)


def test_workers_work(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, bs=4, tfms=TFMS, num_workers=2)
    ys = torch.cat([y for _, y in data.trn_dl])
    assert len(ys) == 12 and sorted(ys.tolist()) == [0] * 6 + [1] * 6
    assert sum(x.shape[0] for x, _ in data.val_dl) == 6
    assert sum(x.shape[0] for x, _ in data.val_dl) == 6  # persistent workers: second epoch


def test_val_folder_names(tmp_path):
    root = make_folder_dataset(tmp_path / "ds", val_name="val")
    for kw in ({}, {"val_name": "val"}):
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0, **kw)
        assert len(data.val_ds) == 6 and data.val_ds.fnames[0].startswith("val/")
    with pytest.raises(FileNotFoundError, match="val_name="):
        ImageClassifierData.from_paths(root, tfms=TFMS, val_name="holdout")
    with pytest.raises(FileNotFoundError, match="no training folder"):
        ImageClassifierData.from_paths(root, tfms=TFMS, trn_name="training")


def test_default_tfms(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, bs=2, num_workers=0)
    assert data.sz == 224 and data.trn_tfms.mean == pytest.approx((0.485, 0.456, 0.406))
    x, _ = next(iter(data.val_dl))
    assert x.shape == (2, 3, 224, 224)


def _add_broken_files(root):
    d = root / "train" / "cat"
    data = jpeg_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("hello, I am not a picture\n")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    (d / ".DS_Store").write_bytes(b"\0\0\0")


def test_unreadable_files_skipped_with_one_summary(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    _add_broken_files(root)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    ours = [w for w in rec if issubclass(w.category, SkippedFilesWarning)]
    assert len(ours) == 1
    msg = str(ours[0].message)
    assert "skipped 3 of" in msg
    for name, why in (("truncated.jpg", "truncated"), ("zero.jpg", "empty file"), ("text.jpg", "holds text")):
        assert f"train/cat/{name}: " in msg and why in msg
    assert sorted(f for f, _ in data.skipped) == ["train/cat/text.jpg", "train/cat/truncated.jpg", "train/cat/zero.jpg"]
    assert len(data.trn_ds) == 12 and len(data.trn_y) == 12
    assert all("notes.txt" not in f for f in data.trn_ds.fnames)
    with pytest.raises(UnreadableFilesError) as ei:
        ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0, strict=True)
    assert len(ei.value.skipped) == 3 and "train/cat/zero.jpg: empty file" in str(ei.value)
    assert "strict=True" in str(ei.value)


def test_file_deleted_after_build_names_the_file(tmp_path):
    from visiontune.data import ImageLoadError

    from visiontune.data.errors import FileChangedWarning

    root = make_folder_dataset(tmp_path / "ds")
    data = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0)
    strict = ImageClassifierData.from_paths(root, tfms=TFMS, num_workers=0, strict=True)
    (root / data.trn_ds.fnames[0]).unlink()
    with pytest.warns(FileChangedWarning, match="cat0.jpg: file not found"):  # default: a blank stand-in
        x, _ = data.trn_ds[0]
    assert x.shape == data.trn_ds[1][0].shape
    with pytest.raises(ImageLoadError, match="cat0.jpg: file not found"):  # strict: the error
        strict.trn_ds[0]


def test_from_arrays_features():
    rng = np.random.default_rng(0)
    x_trn, y_trn = rng.normal(size=(50, 16)).astype(np.float32), rng.integers(0, 3, 50)
    x_val, y_val = rng.normal(size=(20, 16)).astype(np.float32), rng.integers(0, 3, 20)
    test = rng.normal(size=(7, 16)).astype(np.float32)
    data = ImageClassifierData.from_arrays("/tmp/x", (x_trn, y_trn), (x_val, y_val), bs=8,
                                           classes=["a", "b", "c"], test=test, num_workers=8)
    assert data.c == 3 and data.classes == ["a", "b", "c"] and not data.is_multi and not data.is_reg
    x, y = next(iter(data.trn_dl))
    assert x.shape == (8, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    xs = torch.cat([b for b, _ in data.val_dl])
    np.testing.assert_array_equal(xs.numpy(), x_val)  # untransformed, in order
    assert len(data.trn_dl) == 6 and len(data.val_dl) == 3 and len(data.test_dl) == 1
    assert data.trn_ds.file_fingerprint() == [] and data.sz is None
    torch.manual_seed(0)
    ys = torch.cat([y for _, y in data.trn_dl])
    assert len(ys) == 48
    # torch tensors accepted too (activations often are)
    d2 = ImageClassifierData.from_arrays("/tmp/x", (torch.from_numpy(x_trn), y_trn), (x_val, y_val), bs=8)
    assert d2.c == 3 and d2.classes == [0, 1, 2]


def test_from_arrays_multi_and_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    ym = (rng.random((10, 5)) > 0.5).astype(np.float32)
    data = ImageClassifierData.from_arrays(".", (x, ym), (x, ym), bs=4)
    assert data.is_multi and data.c == 5
    assert next(iter(data.val_dl))[1].dtype == torch.float32
    yr = rng.normal(size=10).astype(np.float32)
    data = ImageClassifierData.from_arrays(".", (x, yr), (x, yr), bs=4)
    assert data.is_reg and data.c == 1


def test_from_arrays_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1, 0, 1])
    data = ImageClassifierData.from_arrays(".", (x, y), (x, y), bs=3, tfms=TFMS, num_workers=0)
    xb, yb = next(iter(data.val_dl))
    assert xb.shape == (3, 3, 32, 32) and xb.dtype == torch.float32
    assert data.sz == 32 and data.val_ds.denorm(xb).shape == (3, 32, 32, 3)


# ---- the shared real photos -------------------------------------------------------------------
def test_hymenoptera_end_to_end():
    from vt_data_helpers import hymenoptera

    path = hymenoptera()
    t = time.perf_counter()
    data = ImageClassifierData.from_paths(path, val_name="val", bs=8, tfms=TFMS, num_workers=0)
    build = time.perf_counter() - t
    assert data.classes == ["ants", "bees"] and data.c == 2
    assert len(data.trn_ds) == 245 and len(data.val_ds) == 153
    assert "train/ants/imageNotFound.gif" in data.trn_ds.fnames  # decodes fine, so it counts
    assert data.skipped == []
    assert build < 30, f"probing 398 files took {build:.1f}s"
    x, y = next(iter(data.trn_dl))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    x, y = next(iter(data.val_dl))
    assert x.shape == (8, 3, 32, 32) and y.tolist() == [0] * 8
    assert data.trn_ds.denorm(x).shape == (8, 32, 32, 3)
    # default val_name='valid' falls back to 'val'
    assert len(ImageClassifierData.from_paths(path, tfms=TFMS, num_workers=0).val_ds) == 153


def test_dog_breeds_end_to_end():
    from vt_data_helpers import dog_breeds

    path = dog_breeds()
    label_csv = f"{path}/labels.csv"
    n = len(list(open(label_csv))) - 1
    assert n == 1000
    val_idxs = get_cv_idxs(n)
    data = ImageClassifierData.from_csv(path, "train", "labels.csv", suffix=".jpg", val_idxs=val_idxs,
                                        test_name="test", tfms=TFMS, bs=16, num_workers=0)
    assert len(data.classes) == 120 and data.c == 120
    assert (len(data.trn_ds), len(data.val_ds), len(data.test_ds)) == (800, 200, 1000)
    fn = str(path) + "/" + data.trn_ds.fnames[0]
    assert fn.endswith(".jpg") and data.trn_ds.fnames[0].startswith("train/")
    import os

    assert os.path.isfile(fn)
    # the notes pass the CSV as a full path: same result
    d2 = ImageClassifierData.from_csv(path, "train", label_csv, suffix=".jpg", val_idxs=val_idxs,
                                      tfms=TFMS, bs=16, num_workers=0)
    assert d2.trn_ds.fnames == data.trn_ds.fnames and list(d2.val_y) == list(data.val_y)
    x, y = next(iter(data.trn_dl))
    assert x.shape == (16, 3, 32, 32) and y.max() < 120
