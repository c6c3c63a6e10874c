"""Labels-CSV trouble through from_csv and inspect: each problem is one line naming the row.

Decided behaviour: a row whose file is missing or unreadable is a *counted skip* (one summary
warning, ``data.skipped``; ``strict=True`` makes it an error). Duplicate ids, empty ids or labels,
a missing column and ids pointing outside the image folder are errors before any image is read.
"""
from __future__ import annotations

import os

import pytest
from PIL import Image
from vt_zoo import make_class_images, spy_opens

from visiontune.data import ImageClassifierData, inspect_dataset
from visiontune.data.errors import SkippedFilesWarning, UnreadableFilesError
from visiontune.transforms import tfms_from_model

TFMS = tfms_from_model("efficientnet_lite0", 32)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    make_class_images(r / "train", (200, 40, 40), 6, prefix="r")
    make_class_images(r / "train", (40, 40, 200), 6, prefix="b", seed=50)
    (tmp_path / "secret.jpg").write_bytes((r / "train" / "r0.jpg").read_bytes())  # outside the data folder
    return r


def write_csv(root, rows, header="id,label", name="labels.csv", newline="\n", bom=False):
    text = newline.join([header] + rows) + newline
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    (root / name).write_bytes(data)
    return name


def good_rows():
    return [f"r{i},red" for i in range(6)] + [f"b{i},blue" for i in range(6)]


def build(root, csv, suffix=".jpg", **kw):
    return ImageClassifierData.from_csv(root, "train", root / csv, tfms=TFMS, suffix=suffix, num_workers=0,
                                        val_idxs=[0, 6], **kw)


def test_rows_whose_file_is_missing_are_a_counted_skip(root):
    csv = write_csv(root, good_rows() + ["ghost,red", "phantom,blue"])
    with pytest.warns(SkippedFilesWarning) as rec:
        data = build(root, csv)
    text = str(rec[0].message)
    assert text.startswith("visiontune: skipped 2 of 14 file(s)")
    assert "  train/ghost.jpg: file not found" in text and "  train/phantom.jpg: file not found" in text
    assert len(data.trn_ds) + len(data.val_ds) == 12 and len(data.skipped) == 2
    with pytest.raises(UnreadableFilesError, match=r"2 file\(s\) .*\n  train/ghost.jpg: file not found"):
        build(root, csv, strict=True)
    rep = inspect_dataset(root, csv=csv, suffix=".jpg")
    assert rep["missing"] == ["train/ghost.jpg", "train/phantom.jpg"]


def test_duplicate_ids_are_an_error_naming_the_rows(root):
    csv = write_csv(root, good_rows() + ["r3,blue"])
    with pytest.raises(ValueError, match=r"labels.csv: duplicate file id\(s\): 'r3' in rows 3 and 12 \(lines 5, 14\)"):
        build(root, csv)
    rep = inspect_dataset(root, csv=csv, suffix=".jpg")
    assert rep["csv_problems"] == ["row 12 (line 14): duplicate file id 'r3' (first in row 3)"]


def test_empty_label_is_an_error_naming_the_row(root):
    csv = write_csv(root, good_rows()[:-1] + ["b5,"])
    with pytest.raises(ValueError, match=r"labels.csv: empty label in row\(s\) 11 \(line 13\)"):
        build(root, csv)
    assert inspect_dataset(root, csv=csv, suffix=".jpg")["csv_problems"] == ["row 11 (line 13): empty label for 'b5'"]


def test_empty_id_is_an_error_naming_the_row(root):
    csv = write_csv(root, good_rows() + [",red"])
    with pytest.raises(ValueError, match=r"labels.csv: empty file id in row\(s\) 12 \(line 14\)"):
        build(root, csv)


def test_missing_column_is_an_error(root):
    csv = write_csv(root, [f"r{i}" for i in range(6)], header="id")
    msg = r"labels.csv needs two columns \(file id, label\); found 1 column\(s\): \['id'\]"
    with pytest.raises(ValueError, match=msg):
        build(root, csv)
    with pytest.raises(ValueError, match=msg):
        inspect_dataset(root, csv=csv)


def test_bom_and_windows_line_endings(root):
    csv = write_csv(root, good_rows(), newline="\r\n", bom=True)
    data = build(root, csv)
    assert data.classes == ["blue", "red"] and not data.skipped
    assert all(not f.endswith("\r") and "\ufeff" not in f for f in data.trn_ds.fnames)
    rep = inspect_dataset(root, csv=csv, suffix=".jpg")
    assert rep["class_counts"] == {"blue": 6, "red": 6} and rep["missing"] == [] and rep["csv_problems"] == []


@pytest.mark.parametrize("evil", ["../../etc/passwd", "../secret.jpg", "/etc/passwd", "sub/../../secret.jpg",
                                  r"C:\Windows\win.ini", r"..\secret.jpg"])
def test_ids_cannot_escape_the_data_folder(root, evil, monkeypatch):
    """Refused before anything is opened; nothing outside the data folder is ever read."""
    csv = write_csv(root, good_rows() + [f'"{evil}",red'])
    opened = spy_opens(monkeypatch)
    with pytest.raises(ValueError, match=r"labels.csv: file id\(s\) pointing outside the 'train' folder, refused: row 12 "
                                         r"\(line 14\)"):
        build(root, csv, suffix="")
    rep = inspect_dataset(root, csv=csv)
    assert [p for p in rep["csv_problems"] if "points outside the image folder" in p] == [
        f"row 12 (line 14): file id {evil!r} points outside the image folder; it is refused"]
    inside = os.path.abspath(root) + os.sep
    assert opened and all(p.startswith(inside) for p in opened), [p for p in opened if not p.startswith(inside)]


def test_dot_slash_spellings_of_one_id_are_duplicates(root):
    """Issue 17.7: ``r3``, ``./r3`` and ``.//r3`` name one file; counted as three rows, the file could sit
    in both the training and the validation split."""
    name = write_csv(root, good_rows() + ["./r3,red", ".//r3,red"])
    with pytest.raises(ValueError) as e:
        ImageClassifierData.from_csv(root, "train", name, suffix=".jpg", tfms=TFMS, num_workers=0)
    assert str(e.value) == (
        "labels.csv: duplicate file id(s): 'r3' and './r3' (the same file 'r3') in rows 3 and 12 (lines 5, 14); "
        "'r3' and './/r3' (the same file 'r3') in rows 3 and 13 (lines 5, 15). Each image must appear once.")
    rep = inspect_dataset(root, csv=name, suffix=".jpg")
    assert rep["csv_problems"] == ["row 12 (line 14): duplicate file id './r3' (the same file as row 3, 'r3')",
                                   "row 13 (line 15): duplicate file id './/r3' (the same file as row 3, 'r3')"]
    assert rep["class_counts"] == {"blue": 6, "red": 6}


def test_dot_slash_id_alone_is_fine(root):
    rows = [f"./r{i},red" for i in range(6)] + [f"b{i},blue" for i in range(6)]
    data = ImageClassifierData.from_csv(root, "train", write_csv(root, rows), suffix=".jpg", tfms=TFMS,
                                        num_workers=0, val_idxs=[0, 6])
    assert sorted(data.trn_ds.fnames + data.val_ds.fnames) == sorted(
        [f"train/r{i}.jpg" for i in range(6)] + [f"train/b{i}.jpg" for i in range(6)])
