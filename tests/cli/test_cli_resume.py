"""Ctrl-C saves and exits cleanly; --resume finishes with the same numbers as an uninterrupted run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from vt_cli_helpers import ROOT, run_cli

from visiontune.demo import make_shapes_dataset
from visiontune.run import records
from visiontune.run.recipe import TrainConfig, TrainingInterrupted, train_run


def _config(data, out, cache):
    return TrainConfig(data=str(data), out=str(out), size=32, bs=8, num_workers=0, precompute_aug=1, tta=1,
                       unfrozen_budget=6e5, max_cycles=2, patience=5, cache_dir=str(cache), verbose=False)


def _numbers(run):
    rows = json.loads((run / "metrics.json").read_text())
    for r in rows:
        r.pop("seconds")
    final = json.loads((run / "progress.json").read_text())["final"]
    final.pop("seconds")
    return rows, final, (run / "val_predictions.csv").read_text(), (run / "best.safetensors").read_bytes()


@pytest.mark.slow
def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    data = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_valid=2, size=48)
    cache = tmp_path / "cache"
    full = train_run(_config(data, tmp_path / "full", cache))
    assert "sgdr_unfrozen" in full.steps and not full.skipped
    phases = [r["phase"] for r in json.loads((tmp_path / "full" / "metrics.json").read_text())]
    assert phases.count("unfrozen") >= 2

    # Ctrl-C in the middle of step 4, then (after resuming) in the middle of step 8's SGDR.
    targets = {("head_aug", 1), ("unfrozen", 1)}
    original = records.MetricsLog.on_epoch_end

    def interrupting(self, learner, epoch, logs):
        if (self.phase, epoch) in targets:
            targets.discard((self.phase, epoch))
            raise KeyboardInterrupt
        return original(self, learner, epoch, logs)

    monkeypatch.setattr(records.MetricsLog, "on_epoch_end", interrupting)
    run = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_run(_config(data, run, cache))
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "interrupted" and progress["current"] == "head_aug"
    assert (run / "checkpoint.pt").is_file()
    # the cache is given again: a resumed run uses a recorded cache_dir only inside the run or data folder
    again = TrainConfig(data="", cache_dir=str(cache), verbose=False)
    with pytest.raises(TrainingInterrupted):
        train_run(again, resume=run)
    assert json.loads((run / "progress.json").read_text())["current"] == "sgdr_unfrozen"
    result = train_run(again, resume=run)
    assert not targets
    assert result.steps == full.steps
    assert _numbers(run) == _numbers(tmp_path / "full")
    with pytest.raises(ValueError, match="already finished"):
        train_run(resume=run)


@pytest.mark.slow
def test_ctrl_c_exits_130_and_resume_finishes(tmp_path, cli_env):
    data = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_valid=2, size=48)
    env = dict(cli_env, VISIONTUNE_CACHE=str(tmp_path / "fresh-cache"))  # precompute really runs
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "visiontune.cli", "train", str(data), "--out", str(run), "--fast",
                             "--size", "32", "--bs", "4", "--num-workers", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "step 1/8" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"visiontune: interrupted; resume with: visiontune train --resume {run}"
    assert json.loads((run / "progress.json").read_text())["status"] == "interrupted"
    run_cli(env, "train", "--resume", run, "--quiet")
    assert json.loads((run / "progress.json").read_text())["status"] == "done"
    assert (run / "model.onnx").is_file() and (run / "report.html").is_file()
