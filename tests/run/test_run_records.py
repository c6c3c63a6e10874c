"""Run records that tell the truth (issue 13 item 4) and a run folder that is not trusted on --resume
(issue 17 item 4): tiny real runs (3 shapes x 4 images at 32 px, --fast)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from visiontune.cli import main
from visiontune.demo import make_shapes_dataset
from visiontune.run import records
from visiontune.run.recipe import TrainConfig, TrainingInterrupted, train_run

ROOT = Path(__file__).resolve().parents[2]


def _cfg(data, out, cache, **kw):
    kw = {"fast": True, **kw}
    return TrainConfig(data=str(data), out=str(out), size=32, bs=8, num_workers=0, precompute_aug=0, tta=0,
                       cache_dir=str(cache), verbose=False, **kw)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", n_train=4, n_valid=2, size=48)


@pytest.fixture(scope="module")
def interrupted(shapes, tmp_path_factory):
    """A run interrupted (Ctrl-C) after epoch 0 of step 4: checkpoint.pt holds that epoch."""
    base = tmp_path_factory.mktemp("interrupted")
    original = records.MetricsLog.on_epoch_end

    def interrupting(self, learner, epoch, logs):
        if (self.phase, epoch) == ("head_aug", 1):
            raise KeyboardInterrupt
        return original(self, learner, epoch, logs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(records.MetricsLog, "on_epoch_end", interrupting)
        with pytest.raises(TrainingInterrupted):
            train_run(_cfg(shapes, base / "run", base / "cache", fast=False, unfrozen_budget=0.001))
    return base / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


# -- 13.4: what the files say ----------------------------------------------------------------------------------------
def test_skipped_steps_are_recorded_as_skipped_with_their_reason(shapes, tmp_path):
    result = train_run(_cfg(shapes, tmp_path / "run", tmp_path / "cache"))
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["completed"] == ["precompute", "lr_find_head", "head_precompute", "head_aug"]
    assert progress["skipped"] == [{"step": s, "reason": "--fast (precompute only)"}
                                   for s in ("unfreeze", "differential_lrs", "lr_find_unfrozen", "sgdr_unfrozen")]
    assert result.steps == progress["completed"]
    assert result.skipped == [f"{s}: --fast (precompute only)"
                              for s in ("unfreeze", "differential_lrs", "lr_find_unfrozen", "sgdr_unfrozen")]


def test_an_unfrozen_budget_too_small_to_buy_anything_skips_steps_5_8_without_measuring(shapes, tmp_path):
    """--unfrozen-budget 0.001 (the head-only run): no seconds spent timing unfrozen steps that cannot run."""
    train_run(_cfg(shapes, tmp_path / "run", tmp_path / "cache", fast=False, unfrozen_budget=0.001))
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    reason = "0.0 s of unfrozen_budget; keeping the head-only model"
    assert progress["skipped"] == [{"step": s, "reason": reason}
                                   for s in ("unfreeze", "differential_lrs", "lr_find_unfrozen", "sgdr_unfrozen")]
    assert progress["choices"]["unfrozen_plan"] == {"cycles": 0, "epochs": 0, "available": 0.001,
                                                    "not_measured": True, "mode": "none"}
    assert "fine_tune_plan" not in progress["timings"]


def test_config_records_the_validation_folder_and_console_mode_used(shapes, tmp_path):
    data = tmp_path / "shapes"
    shutil.copytree(shapes, data)
    (data / "valid").rename(data / "val")
    train_run(_cfg(data, tmp_path / "run", tmp_path / "cache"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["val_name"] == "val"  # --val-name valid (the default) fell back to val/
    assert cfg["console"] == "quiet" and "verbose" not in cfg


def test_cli_console_and_timing_table_match_the_process_wall_time(shapes, tmp_path):
    """The Timing table's total and the console's final wall time are within 10% of the process's wall time;
    the console prints durations, the epoch header and phases in words."""
    run = tmp_path / "run"
    env = {**os.environ, "VISIONTUNE_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "visiontune.cli", "train", str(shapes), "--out", str(run), "--fast",
                           "--size", "32", "--bs", "8", "--num-workers", "0", "--tta", "0"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout

    html = (run / "report.html").read_text()
    timing = html[html.index('<section id="timing">'):]
    timing = timing[:timing.index("</section>")]
    laps = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">[^<]*</td><td class=\"num\">([^<]*)</td></tr>", timing)
    names = [n for n, _ in laps]
    assert names[:4] == ["start-up (Python, imports)", "data and model", "precompute activations",
                         "lr_find on the head"]
    assert names[-4:] == ["evaluation and TTA", "export", "previews and report", "total (the whole run)"]
    assert "SGDR, fine-tuning (skipped)" in names
    total = float(laps[-1][1])
    assert abs(sum(float(s) for _, s in laps[:-1]) - total) < 0.01 * total
    assert abs(total - wall) <= 0.10 * wall, (total, wall)

    final = float(re.search(r"wall time ([\d.]+) s$", out.strip().splitlines()[-1]).group(1))
    assert abs(final - wall) <= 0.10 * wall, (final, wall)
    assert re.search(r"^precomputed activations \(0 augmented view\(s\) of each training image\) in \d+\.\d s$",
                     out, re.M)
    assert " at " not in out.split("step 1/8")[1].split("step 2/8")[0]
    header = "  epoch    trn_loss   val_loss   accuracy     time"
    assert out.count(header) == 2  # one per fit (steps 3 and 4)
    assert re.search(r"^\[ 0\s+\d+\.\d{5}\s+\d+\.\d{5}\s+\d+\.\d{5}\s+\d+\.\ds \]$", out, re.M)
    assert "head, augmented views" in out and "head_aug" not in out and "head_precompute" not in out
    assert "skipped: steps 5-8, the unfrozen phase (--fast: precompute only)" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["console"] == "normal" and "verbose" not in cfg
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # lock and owner record gone


# -- 13.4: a false start leaves no folder ----------------------------------------------------------------------------
@pytest.mark.parametrize("case, error", [
    ("bad data path", r"data folder .*nowhere does not exist"),
    ("unknown arch", r"unknown architecture 'no_such_arch'"),
    ("no weights offline", r"no pretrained weights for 'resnet18'"),
])
def test_a_run_that_fails_before_training_leaves_no_folder(shapes, tmp_path, monkeypatch, case, error):
    monkeypatch.chdir(tmp_path)
    data, kw = shapes, {}
    if case == "bad data path":
        data = tmp_path / "nowhere"
    elif case == "unknown arch":
        kw["arch"] = "no_such_arch"
    else:
        monkeypatch.setenv("VISIONTUNE_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
        kw["arch"] = "resnet18"
    for out in (tmp_path / "runs" / "new", None):
        cfg = _cfg(data, out or "x", tmp_path / "cache", **kw)
        cfg.out = str(out) if out else None  # None: the default runs/<data name>
        with pytest.raises((ValueError, OSError, RuntimeError), match=error):
            train_run(cfg)
        assert not (tmp_path / "runs").exists(), case
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises((ValueError, OSError, RuntimeError), match=error):
        train_run(_cfg(data, existing, tmp_path / "cache", **kw))
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_cli_bad_data_path_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(tmp_path / "nowhere"), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == f"visiontune: error: data folder {tmp_path / 'nowhere'} does not exist"
    assert not (tmp_path / "runs").exists()


# -- 17.4: a resumed folder is not trusted ---------------------------------------------------------------------------
def test_config_cache_dir_out_of_the_run_is_not_used_on_resume(interrupted, tmp_path, monkeypatch):
    run = _copy(interrupted, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "cache_dir": str(tmp_path / "steered")}))
    monkeypatch.setenv("VISIONTUNE_CACHE", str(tmp_path / "default-cache"))
    result = train_run(resume=run)
    assert not (tmp_path / "steered").exists()
    assert any((tmp_path / "default-cache" / "activations").iterdir())
    assert result.steps[:4] == ["precompute", "lr_find_head", "head_precompute", "head_aug"]


def _edit_checkpoint(run: Path, edit) -> None:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    edit(state)
    torch.save(state, run / "checkpoint.pt")


def _wrong_shape(state):
    key = next(k for k in state["model"] if k.endswith("weight") and state["model"][k].ndim == 2)
    state["model"][key] = torch.zeros(3, 5)


@pytest.mark.parametrize("edit, why", [
    (_wrong_shape, r"its weights do not fit the model \(head.2.weight: \(3, 5\), the model has \(3, 2560\)\)"),
    (lambda s: s.__setitem__("rng_torch", torch.zeros(7, dtype=torch.uint8)), "its torch RNG state is not one torch writes"),
    (lambda s: s.__setitem__("rng_python", "__import__('os')"), "its Python RNG state is not one Python writes"),
    (lambda s: s.__setitem__("rng_python", "(3, (1, 2), None)"), "its Python RNG state is not one Python writes"),
    (lambda s: s["model"].pop(next(iter(s["model"]))), r"its weights do not fit the model \(names differ: .*\)"),
    (lambda s: s.__setitem__("epoch", -5), "its epoch is -5"),
])
def test_a_checkpoint_that_loads_but_does_not_fit_is_set_aside(interrupted, tmp_path, capsys, edit, why):
    run = _copy(interrupted, tmp_path)
    _edit_checkpoint(run, edit)
    damaged = (run / "checkpoint.pt").read_bytes()
    result = train_run(resume=run)
    err = capsys.readouterr().err
    assert re.search(rf"visiontune: warning: {re.escape(str(run / 'checkpoint.pt'))} does not fit this run: {why}; "
                     r"moved it to checkpoint.pt.damaged and redoing step head_aug from its start", err), err
    assert (run / "checkpoint.pt.damaged").read_bytes() == damaged
    assert "head_aug" in result.steps and (run / "model.json").is_file()
    assert json.loads((run / "progress.json").read_text())["status"] == "done"


def test_a_labels_csv_from_outside_the_data_is_kept_in_the_run_for_resume(shapes, tmp_path):
    """--resume reads labels only from the data or the run folder, so the run keeps a copy of an outside CSV."""
    data = tmp_path / "csvdata"
    (data / "train").mkdir(parents=True)
    rows = ["id,label"]
    for split in ("train", "valid"):
        for f in sorted((shapes / split).glob("*/*")):
            name = f"{split}_{f.parent.name}_{f.stem}"
            shutil.copy(f, data / "train" / f"{name}{f.suffix}")
            rows.append(f"{name},{f.parent.name}")
    outside = tmp_path / "elsewhere" / "my_labels.csv"
    outside.parent.mkdir()
    outside.write_text("\n".join(rows) + "\n")
    suffix = next((shapes / "train").glob("*/*")).suffix
    run = tmp_path / "run"
    train_run(_cfg(data, run, tmp_path / "cache", csv=str(outside), suffix=suffix, val_pct=0.25))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["csv"] == str(outside) and cfg["csv_copy"] == "labels.csv" and cfg["val_name"] is None
    assert (run / "labels.csv").read_bytes() == outside.read_bytes()
    outside.unlink()
    progress = json.loads((run / "progress.json").read_text())
    (run / "progress.json").write_text(json.dumps({**progress, "status": "interrupted"}))
    result = train_run(resume=run)
    assert result.steps == ["precompute", "lr_find_head", "head_precompute", "head_aug"]
