"""Training on the zoo: the Python API (precompute and augmented fine-tuning with a file that vanishes
mid-run) and the ``visiontune train`` / ``predict`` commands on a folder holding every zoo case."""
from __future__ import annotations

import csv
import io
import math

import pytest
from vt_zoo import BAD_CASES, make_zoo_folder

from visiontune import ConvLearner, ImageClassifierData, tfms_from_model
from visiontune.data.errors import FileChangedWarning, SkippedFilesWarning


def test_python_api_trains_on_the_zoo(tmp_path):
    placed = make_zoo_folder(tmp_path / "zoo")
    with pytest.warns(SkippedFilesWarning, match=f"skipped {len(BAD_CASES)} of "):
        data = ImageClassifierData.from_paths(tmp_path / "zoo", bs=8, num_workers=0,
                                              tfms=tfms_from_model("efficientnet_lite0", 32))
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True, cache_dir=tmp_path / "cache",
                                   models_path=tmp_path / "models", device="cpu", verbose=False, engine="torch")
    logs = learn.fit(1e-2, 1)
    assert all(math.isfinite(logs[-1][k]) for k in ("trn_loss", "val_loss", "accuracy"))
    # augmented training reads the files again: one of them has vanished since the data was built
    gone = next(f for f, r in placed.items() if r is None and f.endswith("animated.gif"))
    (tmp_path / "zoo" / gone).unlink()
    learn.precompute = False
    with pytest.warns(FileChangedWarning, match=f"{gone}: file not found"):
        logs = learn.fit(1e-2, 1)
    assert math.isfinite(logs[-1]["val_loss"])


def cli(*argv) -> int:
    from visiontune.cli import main

    return main([str(a) for a in argv])


def test_cli_train_and_predict_on_the_zoo(tmp_path, capsys, monkeypatch):
    pytest.importorskip("visiontune.cli")
    placed = make_zoo_folder(tmp_path / "zoo")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(SkippedFilesWarning) as rec:
        rc = cli("train", "zoo", "--fast", "--size", 32, "--bs", 8, "--precompute-aug", 0, "--tta", 0,
                 "--head-epochs", 1, "--aug-epochs", 0, "--lr", 0.01, "--out", "run", "--cache-dir", "cache",
                 "--num-workers", 0, "--engine", "torch")
    out, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    text = out + err
    assert f"{len(BAD_CASES)} unreadable file(s) skipped" in text
    warned = "\n".join(str(r.message) for r in rec if issubclass(r.category, SkippedFilesWarning))
    for f, reason in placed.items():
        if reason is not None:
            assert f"  {f}: " in warned  # each bad file named once, with its reason
    assert "Traceback" not in text
    assert (tmp_path / "run" / "model.onnx").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()

    files = sorted(placed)
    rc = cli("predict", "run", *[f"zoo/{f}" for f in files])
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["file"] for r in rows) == sorted(f"zoo/{f}" for f, r in placed.items() if r is None)
    for f, reason in placed.items():
        if reason is not None:
            assert f"zoo/{f}: " in err
