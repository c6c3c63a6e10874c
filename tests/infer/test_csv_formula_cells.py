"""Issue 17, item 8: CSV cells made from file names and labels never run as spreadsheet formulas.

``predict``'s CSV, ``submit``'s CSV (ids and class headers, unless ``--exact-ids``), ``val_predictions.csv``
and ``metrics.csv`` write a cell starting with ``=``, ``+``, ``-`` or ``@`` with a leading ``'``; the report
reads ``val_predictions.csv`` back exactly. The bytes written are checked.
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from visiontune.infer import predict as predict_mod
from visiontune.infer import submit as submit_mod
from visiontune.infer.predict import format_predictions


def test_predict_csv_neutralises_file_names_and_labels_json_keeps_them():
    rows = [{"file": "=HYPERLINK(\"http://x\")", "top": [("@SUM(A1)", 0.9), ("-cmd", 0.1)], "probs": {}},
            {"file": "photos/ok.jpg", "top": [("-1", 0.6), ("ants", 0.4)], "probs": {}}]
    text = format_predictions(rows, "csv", 2)
    assert text.encode() == (b"file,label_1,prob_1,label_2,prob_2\n"
                             b"\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1),0.900000,'-cmd,0.100000\n"
                             b"photos/ok.jpg,-1,0.600000,ants,0.400000\n")
    assert '"file": "=HYPERLINK' in format_predictions(rows, "json", 2)


def test_predict_regression_csv_neutralises_the_header_and_file():
    rows = [{"file": "+x.jpg", "top": [], "values": {"=v": 1.5}}]
    assert format_predictions(rows, "csv").encode() == b"file,'=v\n'+x.jpg,1.5\n"


class _FakeModel:
    kind = "single"

    def __init__(self, classes):
        self.classes = classes
        self.unreadable = []


def _fake_submit(monkeypatch, tmp_path, classes, names):
    test = tmp_path / "test"
    test.mkdir()
    for n in names:
        (test / n).write_bytes(b"x")
    m = _FakeModel(classes)
    monkeypatch.setattr(submit_mod, "load_model", lambda model: m)
    monkeypatch.setattr(submit_mod, "_readable", lambda paths, strict, progress: (list(paths), []))
    monkeypatch.setattr(submit_mod, "predict_with_progress",
                        lambda m, paths, **kw: np.tile(np.array([[0.25, 0.75]]), (len(paths), 1)))
    return test


def test_submit_neutralises_formula_ids_and_headers_with_a_warning(monkeypatch, tmp_path):
    test = _fake_submit(monkeypatch, tmp_path, ["=cats", "dogs"], ["=1+2.jpg", "7.jpg", "abc.jpg"])
    with pytest.warns(submit_mod.FormulaCellWarning, match=r"2 id\(s\) or class name\(s\).*--exact-ids"):
        out = submit_mod.make_submission("m", test, tmp_path / "sub.csv")
    assert out.read_bytes() == b"id,'=cats,dogs\n7,0.25,0.75\n'=1+2,0.25,0.75\nabc,0.25,0.75\n"


def test_submit_exact_ids_writes_them_as_they_are(monkeypatch, tmp_path):
    test = _fake_submit(monkeypatch, tmp_path, ["cats", "dogs"], ["-5x.jpg", "7.jpg"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = submit_mod.make_submission("m", test, tmp_path / "sub.csv", binary=True, exact_ids=True)
    assert out.read_bytes() == b"id,label\n7,0.75\n-5x,0.75\n"


def test_submit_plain_kaggle_ids_are_unchanged_and_silent(monkeypatch, tmp_path):
    test = _fake_submit(monkeypatch, tmp_path, ["cats", "dogs"], ["000bec180eb18c7604dcecc8fe0dba07.jpg", "12.jpg"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = submit_mod.make_submission("m", test, tmp_path / "sub.csv", binary=True)
    assert out.read_bytes() == b"id,label\n12,0.75\n000bec180eb18c7604dcecc8fe0dba07,0.75\n"


def test_cli_submit_has_exact_ids_in_its_help():
    from visiontune.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["submit"]
    assert "--exact-ids" in sub.format_help()


class _Folder:
    def __init__(self, path):
        self.path = path

    def write_text(self, name, text):
        (self.path / name).write_text(text, encoding="utf-8")

    def write_json(self, name, value):
        import json

        (self.path / name).write_text(json.dumps(value), encoding="utf-8")


def test_val_predictions_and_metrics_csv_are_spreadsheet_safe_and_read_back_exactly(tmp_path):
    from visiontune.run.folder import read_csv_rows as _read_csv
    from visiontune.run.records import write_metrics, write_val_predictions

    data = types.SimpleNamespace(classes=["=evil", "@home"], c=2,
                                 val_ds=types.SimpleNamespace(fnames=["valid/=evil/-x.jpg", "=HYPERLINK(1).jpg"]))
    preds = np.log(np.array([[0.9, 0.1], [0.2, 0.8]]))
    write_val_predictions(_Folder(tmp_path), data, "single", preds, np.array([0, 1]))
    raw = (tmp_path / "val_predictions.csv").read_bytes()
    assert raw == (b"fname,target,pred,p_=evil,p_@home\n"
                   b"valid/=evil/-x.jpg,'=evil,'=evil,0.9000000,0.1000000\n"
                   b"'=HYPERLINK(1).jpg,'@home,'@home,0.2000000,0.8000000\n")
    rows = _read_csv(tmp_path / "val_predictions.csv")
    assert [(r["fname"], r["target"], r["pred"]) for r in rows] == [
        ("valid/=evil/-x.jpg", "=evil", "=evil"), ("=HYPERLINK(1).jpg", "@home", "@home")]

    write_metrics(_Folder(tmp_path), [{"phase": "=cmd", "epoch": 1, "val_loss": -0.5}])
    assert (tmp_path / "metrics.csv").read_bytes() == b"phase,epoch,val_loss\n'=cmd,1,-0.5\n"
    assert _read_csv(tmp_path / "metrics.csv") == [{"phase": "=cmd", "epoch": "1", "val_loss": "-0.5"}]


def test_predict_module_uses_the_one_escaper():
    assert predict_mod.spreadsheet_safe is __import__("visiontune.utils.text", fromlist=["x"]).spreadsheet_safe
