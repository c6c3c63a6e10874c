"""Issue 17, items 9 and 14: file and class names with control characters or two Unicode spellings.

* every line printed from a file or class name has its control characters escaped (``printable``): a name
  holding ``\\x1b[2J`` cannot clear the terminal, one holding ``\\n`` cannot forge a line;
* class folders ``é`` composed and decomposed are one class, named in NFC with one warning; two folders
  that differ only that way are refused, naming both.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from visiontune import ImageClassifierData

EVIL = "x\x1b[2Jvisiontune: done\nfake"
COMPOSED, DECOMPOSED = "caf\u00e9", "cafe\u0301"


def _img(path, seed=0, size=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _dataset(root, trn_classes, val_classes):
    for split, classes in (("train", trn_classes), ("valid", val_classes)):
        for k, c in enumerate(classes):
            for i in range(2):
                _img(root / split / c / f"{i}.png", seed=hash((split, c, i)) % 1000)
    return root


def test_inspect_escapes_control_characters_in_class_and_file_names(tmp_path, capsys):
    from visiontune.cli import main

    root = _dataset(tmp_path / "d", ["ants", EVIL], ["ants", EVIL])
    (root / "train" / "ants" / f"bad{EVIL}.jpg").write_bytes(b"not an image")
    assert main(["inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nfake" not in out
    assert "x\\x1b[2Jvisiontune: done\\nfake" in out
    assert not any(line.startswith("visiontune: done") for line in out.splitlines())


def test_train_warnings_escape_file_names(tmp_path):
    root = _dataset(tmp_path / "d", ["ants", "bees"], ["ants", "bees"])
    (root / "train" / "ants" / f"bad{EVIL}.jpg").write_bytes(b"not an image")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ImageClassifierData.from_paths(root, bs=2, num_workers=0)
    text = "\n".join(str(x.message) for x in w)
    assert "bad" in text and "\x1b" not in text and "done\nfake" not in text
    assert "badx\\x1b[2Jvisiontune: done\\nfake.jpg" in text


def test_cli_warnings_and_errors_are_escaped(tmp_path, capsys):
    from visiontune.cli import _escape_warnings, main

    _escape_warnings()
    shown = warnings.formatwarning(f"a {EVIL}\nsecond line", UserWarning, "f.py", 1)
    assert "\x1b" not in shown and "second line" in shown
    assert main(["inspect", str(tmp_path / f"nope{EVIL}")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1, err


def test_predict_skipped_line_is_escaped(tmp_path, capsys, monkeypatch):
    from visiontune.infer import predict as P

    bad = tmp_path / f"bad{EVIL}.jpg"
    bad.write_bytes(b"x")
    good = tmp_path / "good.jpg"
    _img(good)

    class M:
        kind, classes, unreadable = "single", ["a", "b"], []

    monkeypatch.setattr(P, "predict_with_progress", lambda m, paths, **kw: np.full((len(paths), 2), 0.5, np.float32))
    monkeypatch.setattr(P, "load_model", lambda model: M())
    rows = P.predict_paths("run", [bad, good])
    assert [r["file"] for r in rows] == [str(good)]
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1 and "visiontune: skipped" in err and "\\nfake.jpg" in err


def test_composed_and_decomposed_class_folders_are_one_class_with_a_warning(tmp_path):
    root = _dataset(tmp_path / "d", [DECOMPOSED, "tea"], [COMPOSED, "tea"])
    with pytest.warns(UserWarning, match=r"not in Unicode NFC: 'cafe\\u0301' is named 'caf\\xe9'"):
        data = ImageClassifierData.from_paths(root, bs=2, num_workers=0)
    assert data.classes == [COMPOSED, "tea"]
    assert len(data.trn_ds.fnames) == 4 and len(data.val_ds.fnames) == 4
    assert sorted(set(np.asarray(data.val_ds.y).tolist())) == [0, 1]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems normalise names themselves")
def test_both_spellings_as_separate_folders_are_refused_naming_both(tmp_path):
    root = _dataset(tmp_path / "d", [COMPOSED, DECOMPOSED, "tea"], ["tea"])
    with pytest.raises(ValueError, match=r"two class folders whose names look identical: 'cafe\\u0301' and "
                                         r"'caf\\xe9'"):
        ImageClassifierData.from_paths(root, bs=2, num_workers=0)


def test_inspect_counts_both_spellings_as_one_class(tmp_path):
    from visiontune.data import inspect_dataset

    root = _dataset(tmp_path / "d", [DECOMPOSED], [COMPOSED])
    rep = inspect_dataset(root)
    assert dict(rep["splits"]["train"]) == {COMPOSED: 2} and dict(rep["splits"]["valid"]) == {COMPOSED: 2}


def test_csv_labels_composed_and_decomposed_are_one_class_with_a_warning(tmp_path):
    root = tmp_path / "d"
    for i in range(6):
        _img(root / "train" / f"im{i}.png", seed=i)
    rows = ["id,label"] + [f"im{i},{[COMPOSED, DECOMPOSED, 'tea'][i % 3]}" for i in range(6)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"label\(s\) not in Unicode NFC: 'cafe\\u0301' is read as 'caf\\xe9'"):
        data = ImageClassifierData.from_csv(root, "train", root / "labels.csv", bs=2, val_idxs=[0, 2],
                                            suffix=".png", num_workers=0)
    assert data.classes == [COMPOSED, "tea"]
