"""The CSV workflow on dog_breeds_sample: train from labels.csv, then a Kaggle submission for test/."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from vt_cli_helpers import DOG_BREEDS, run_cli

pytestmark = pytest.mark.slow


def test_train_csv_then_submit(dog_breeds_run, cli_env, tmp_path):
    run, proc = dog_breeds_run
    assert proc.stdout.strip().splitlines()[-1].startswith(f"run {run}")  # --quiet: only the result line
    classes = json.loads((run / "classes.json").read_text())
    assert len(classes) == 120 and classes == sorted(classes)
    cfg = json.loads((run / "config.json").read_text())
    # config.json records the labels file actually read (issue 13: what was used, not what was typed)
    assert Path(cfg["csv"]) == (DOG_BREEDS / "labels.csv").resolve() and cfg["suffix"] == ".jpg"
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["n_train"] + summary["n_valid"] == 1000 and summary["n_valid"] == 200  # get_cv_idxs: 20%

    out = tmp_path / "submission.csv"
    run_cli(cli_env, "submit", run, DOG_BREEDS / "test", "--out", out)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header == ["id"] + classes
    assert len(body) == 1000 and all(len(r) == 121 for r in body)
    ids = [r[0] for r in body]
    assert len(set(ids)) == 1000 and {p.stem for p in (DOG_BREEDS / "test").iterdir()} == set(ids)
    probs = np.array([[float(v) for v in r[1:]] for r in body])
    assert np.all(probs >= 0) and np.abs(probs.sum(1) - 1).max() <= 1e-5


def test_submit_binary_needs_two_classes(dog_breeds_run, cli_env, tmp_path):
    run, _ = dog_breeds_run
    proc = run_cli(cli_env, "submit", run, DOG_BREEDS / "test", "--out", tmp_path / "s.csv", "--binary", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "visiontune: error: --binary needs a two-class model; this one has 120 classes"
