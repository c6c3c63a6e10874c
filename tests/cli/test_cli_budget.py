"""--budget counts from the process's start and fits TTA into what is left; --fast's defaults."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from visiontune.cli import seconds_since_process_start
from visiontune.demo import make_shapes_dataset
from visiontune.run.recipe import TrainConfig, train_run


def _config(data, out, cache, **kw):
    return TrainConfig(data=str(data), out=str(out), size=32, bs=8, num_workers=0, cache_dir=str(cache),
                       verbose=False, **kw)


def test_seconds_since_process_start_counts_the_start_up():
    def started(code, shell_first=None):
        argv = [sys.executable, "-c", code]
        if shell_first:  # the shell execs python in its own process, as `pip install . && visiontune demo` does
            argv = ["bash", "-c", f"{shell_first}; exec {shlex.join(argv)}"]
        return float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)

    probe = "from visiontune.cli import seconds_since_process_start as s; print(s())"
    assert 0 < started(probe) < 15  # interpreter start and imports
    assert 1.5 <= started("import time, visiontune; time.sleep(1.5); " + probe) < 15  # imports after visiontune
    assert started(probe, shell_first="sleep 4") < 4  # the shell's work before exec is not this program's
    assert seconds_since_process_start() > 0


def test_fast_defaults_are_one_clean_pass_and_two_tta_views():
    cfg = TrainConfig(data="x", fast=True)
    assert (cfg.resolved_precompute_aug(), cfg.resolved_tta()) == (0, 2)
    assert (TrainConfig(data="x").resolved_precompute_aug(), TrainConfig(data="x").resolved_tta()) == (2, 4)
    given = TrainConfig(data="x", fast=True, precompute_aug=3, tta=5)  # explicit values win
    assert (given.resolved_precompute_aug(), given.resolved_tta()) == (3, 5)


@pytest.mark.slow
def test_fast_run_trains_the_head_on_clean_activations_only(tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_valid=2, size=48)
    result = train_run(_config(data, tmp_path / "run", tmp_path / "cache", fast=True))
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["choices"]["precompute_aug"] == 0
    phases = [r["phase"] for r in progress["rows"]]
    assert phases == ["head_precompute"] * 2 + ["head_aug"] * 3  # step 4 ran, on the cached clean activations
    assert progress["final"]["tta_views"] == 2 and result.tta_accuracy is not None
    assert {"setup", "precompute", "lr_find_head", "head_precompute", "head_aug", "evaluate_tta", "export",
            "report"} <= set(progress["timings"])
    # no augmented training view was cached: train + valid clean, and the validation set's 2 TTA views (imaging.views)
    views = sorted(json.loads(p.read_text())["view"] for p in (tmp_path / "cache").rglob("*.json")
                   if "view" in json.loads(p.read_text()))
    assert views == ["clean", "clean", "view-hflip", "view-zoom_in"]


@pytest.mark.slow
def test_budget_spent_before_the_run_leaves_the_cheapest_model(tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_valid=2, size=48)
    result = train_run(_config(data, tmp_path / "run", tmp_path / "cache", budget=5.0), spent_before=1000.0)
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["choices"]["precompute_aug"] == 0  # no time for augmented views
    assert any(s.startswith("unfreeze:") and "--budget" in s for s in result.skipped)
    assert progress["final"]["tta_views"] == 0 and result.tta_accuracy is None
    assert result.accuracy is not None and (tmp_path / "run" / "model.onnx").is_file()
    assert result.seconds >= 1000.0  # the clock started before the call
