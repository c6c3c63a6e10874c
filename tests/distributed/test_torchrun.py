"""``torchrun --nproc_per_node 2`` (gloo, CPU) through precompute and fine-tuning, against one process.

Runs ``ddp_child.py`` three times on a generated 2-class dataset (16 train / 8 valid images a class,
64 px, efficientnet_lite0 with its packaged weights): under torchrun with 2 processes, as one plain
process, and once more as one process resuming the 2-process run's fine-tuning checkpoint.
This tests the Python API; ``visiontune train`` under torchrun is ``test_cli_torchrun.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from vt_dist_helpers import N_VAL, launch_env
from vt_dist_helpers import make_dataset as _make_dataset

HERE = Path(__file__).parent
CHILD = HERE / "ddp_child.py"


def _run(args: list[str], nproc: int | None, timeout: int = 240) -> None:
    env = launch_env()
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    else:
        cmd = [sys.executable]
    proc = subprocess.run(cmd + [str(CHILD), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = _make_dataset(root / "data")
    out = {}
    for name, nproc in (("ddp", 2), ("single", None)):
        (root / name).mkdir()
        proc = _run([str(data), str(root / name), str(root / f"cache-{name}")], nproc)
        out[name] = json.loads((root / name / "results.json").read_text())
        out[f"{name}_stdout"] = proc.stdout
    (root / "resume").mkdir()
    _run([str(data), str(root / "resume"), str(root / "cache-resume"), "--resume", str(root / "ddp" / "finetune.pt")], None)
    out["resumed"] = json.loads((root / "resume" / "resumed.json").read_text())
    out["root"] = root
    return out


def test_exactly_one_set_of_output_files(runs):
    root = runs["root"]
    files = sorted(p.relative_to(root / "ddp").as_posix() for p in (root / "ddp").rglob("*") if p.is_file())
    assert files == ["finetune.pt", "models/final.safetensors", "models/head.safetensors", "precompute.pt", "results.json"]
    cache = root / "cache-ddp"
    entries = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    # train clean, valid clean, 2 TTA views of valid: each one .npy + its .json sidecar, written once
    assert len([e for e in entries if e.endswith(".npy")]) == 4
    assert len([e for e in entries if e.endswith(".json")]) == 4
    assert len(entries) == 8, entries
    # the epoch table is printed once (rank 0 only): 2 precompute epochs + 1 fine-tuning epoch
    assert runs["ddp_stdout"].count("[ 0 ") == 2 and runs["ddp_stdout"].count("[ 1 ") == 1


def test_metrics_cover_the_whole_validation_set_and_ranks_agree(runs):
    n_valid = 2 * N_VAL
    for phase in ("precompute", "finetune"):
        res = runs["ddp"][phase]
        assert res["n_valid"] == n_valid and res["n_tta"] == n_valid
        first, second = res["ranks"]
        assert first == second  # validation, TTA, lr_find and the weights are the same on both ranks
    assert runs["ddp"]["world_size"] == 2 and runs["single"]["world_size"] == 1


def test_precompute_path_matches_one_process(runs):
    ddp, single = runs["ddp"]["precompute"], runs["single"]["precompute"]
    assert ddp["accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-4)
    # lr_find: one answer on all ranks, equal to the single-process sweep
    assert ddp["ranks"][0]["lr_suggestion"] == pytest.approx(single["ranks"][0]["lr_suggestion"], rel=1e-6)
    np.testing.assert_allclose(ddp["ranks"][0]["lr_losses"], single["ranks"][0]["lr_losses"], rtol=1e-4, atol=1e-5)


def test_finetune_path_matches_one_process_within_tolerance(runs):
    ddp, single = runs["ddp"]["finetune"], runs["single"]["finetune"]
    # DDP splits each batch of 8 into 2 x 4 (the head's BatchNorm sees 4 rows) and shuffles with its own
    # generator, so the weights differ slightly; accuracy must agree within one validation image.
    assert abs(ddp["accuracy"] - single["accuracy"]) <= 1 / (2 * N_VAL) + 1e-9
    assert abs(ddp["tta_accuracy"] - single["tta_accuracy"]) <= 1 / (2 * N_VAL) + 1e-9


def test_checkpoint_from_two_processes_resumes_in_one(runs):
    state = torch.load(runs["root"] / "ddp" / "finetune.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # the unwrapped model's weights
    assert runs["resumed"]["world_size"] == 1
    assert runs["resumed"]["resumed_epochs"] == [0, 1]
    assert runs["resumed"]["resume_accuracy"] >= runs["ddp"]["finetune"]["accuracy"] - 1 / (2 * N_VAL) - 1e-9
