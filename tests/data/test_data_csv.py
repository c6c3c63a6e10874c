"""ImageClassifierData.from_csv: label kinds, CSV quirks, validation of rows, missing files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from vt_data_helpers import save_jpeg

from visiontune.data import ImageClassifierData
from visiontune.data.errors import SkippedFilesWarning, UnreadableFilesError
from visiontune.transforms import tfms_from_model

TFMS = tfms_from_model("resnet34", 32)


def _dataset(tmp_path, rows, header="id,label", n_files=None, encoding_prefix="", newline="\n"):
    root = tmp_path / "ds"
    ids = [r[0] for r in rows]
    for i, fid in enumerate(ids[:n_files] if n_files is not None else ids):
        if "/" not in fid and ".." not in fid:
            save_jpeg(root / "train" / f"{fid}.jpg", size=(40, 36), color=(20 * i % 255, 100, 50))
    (root / "train").mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + [",".join(r) for r in rows]
    (root / "labels.csv").write_bytes((encoding_prefix + newline.join(lines) + newline).encode("utf-8"))
    return root


def _from_csv(root, **kw):
    kw.setdefault("tfms", TFMS)
    kw.setdefault("num_workers", 0)
    kw.setdefault("bs", 4)
    return ImageClassifierData.from_csv(root, "train", "labels.csv", suffix=".jpg", **kw)


def test_single_label_with_bom_and_crlf(tmp_path):
    rows = [(f"im{i}", ["cat", "dog", "owl"][i % 3]) for i in range(10)]
    root = _dataset(tmp_path, rows, encoding_prefix="\ufeff", newline="\r\n")
    data = _from_csv(root, val_idxs=[1, 4])
    assert data.classes == ["cat", "dog", "owl"] and data.c == 3
    assert not data.is_multi and not data.is_reg
    assert data.val_ds.fnames == ["train/im1.jpg", "train/im4.jpg"]
    assert list(data.val_y) == [1, 1] and len(data.trn_ds) == 8
    assert data.trn_ds.fnames[0] == "train/im0.jpg"
    x, y = next(iter(data.trn_dl))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64


def test_default_val_idxs_and_no_header(tmp_path):
    rows = [(f"im{i}", "cat" if i % 2 else "dog") for i in range(10)]
    root = _dataset(tmp_path, rows, header=None)
    data = _from_csv(root, skip_header=False)  # val_idxs=None -> get_cv_idxs(10) = [3, 6]
    assert data.val_ds.fnames == ["train/im3.jpg", "train/im6.jpg"]
    assert len(data.trn_ds) == 8


def test_multi_label(tmp_path):
    rows = [("a", "sun cloud"), ("b", "cloud"), ("c", "rain cloud sun"), ("d", ""), ("e", "sun")]
    root = _dataset(tmp_path, rows)
    data = _from_csv(root, val_idxs=[4], bs=2)
    assert data.is_multi and not data.is_reg and data.classes == ["cloud", "rain", "sun"] and data.c == 3
    np.testing.assert_array_equal(data.trn_y, [[1, 0, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
    assert data.trn_y.dtype == np.float32
    _, y = next(iter(data.val_dl))
    assert y.dtype == torch.float32 and y.tolist() == [[0.0, 0.0, 1.0]]


def test_continuous(tmp_path):
    rows = [(f"im{i}", f"{i * 0.5}") for i in range(6)]
    root = _dataset(tmp_path, rows)
    data = _from_csv(root, val_idxs=[0], continuous=True, bs=2)
    assert data.is_reg and not data.is_multi and data.c == 1
    np.testing.assert_allclose(data.trn_y, [0.5, 1.0, 1.5, 2.0, 2.5])
    _, y = next(iter(data.val_dl))
    assert y.dtype == torch.float32 and y.tolist() == [0.0]
    bad = _dataset(tmp_path / "bad", [("a", "1.5"), ("b", "abc"), ("c", "")])
    with pytest.raises(ValueError, match=r"row\(s\) 1 \(line 3\), 2 \(line 4\)"):
        _from_csv(bad, val_idxs=[0], continuous=True)


@pytest.mark.parametrize("evil", ["../../etc/passwd", "/etc/passwd", "sub/../../x", "..\\..\\win"])
def test_path_traversal_refused(tmp_path, evil):
    rows = [("ok1", "cat"), (evil, "dog"), ("ok2", "cat")]
    root = _dataset(tmp_path, rows)
    with pytest.raises(ValueError) as ei:
        _from_csv(root, val_idxs=[0])
    msg = str(ei.value)
    assert "row 1 (line 3)" in msg and "outside" in msg and repr(evil) in msg


def test_row_errors_name_the_rows(tmp_path):
    root = _dataset(tmp_path, [("a", "cat"), ("b", "dog"), ("a", "dog")])
    with pytest.raises(ValueError, match=r"duplicate file id.*'a' in rows 0 and 2"):
        _from_csv(root, val_idxs=[0])
    root = _dataset(tmp_path / "e", [("a", "cat"), ("b", ""), ("c", "dog")])
    with pytest.raises(ValueError, match=r"empty label in row\(s\) 1 \(line 3\)"):
        _from_csv(root, val_idxs=[0])
    root = _dataset(tmp_path / "one", [("a",), ("b",)], header="id")
    with pytest.raises(ValueError, match="needs two columns"):
        _from_csv(root, val_idxs=[0])
    root = _dataset(tmp_path / "v", [("a", "cat"), ("b", "dog")])
    with pytest.raises(ValueError, match="val_idxs"):
        _from_csv(root, val_idxs=[5])
    with pytest.raises(FileNotFoundError, match="labels CSV"):
        ImageClassifierData.from_csv(root, "train", "nope.csv")


def test_missing_files_skipped_then_strict(tmp_path):
    rows = [(f"im{i}", "cat" if i % 2 else "dog") for i in range(8)]
    root = _dataset(tmp_path, rows, n_files=6)  # im6, im7 have no file
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data = _from_csv(root, val_idxs=[0, 7])
    ours = [w for w in rec if issubclass(w.category, SkippedFilesWarning)]
    assert len(ours) == 1 and "train/im6.jpg: file not found" in str(ours[0].message)
    assert sorted(f for f, _ in data.skipped) == ["train/im6.jpg", "train/im7.jpg"]
    assert data.val_ds.fnames == ["train/im0.jpg"] and len(data.trn_ds) == 5
    with pytest.raises(UnreadableFilesError, match="im7.jpg"):
        _from_csv(root, val_idxs=[0, 7], strict=True)
