"""Helpers for the CLI tests: run ``python -m visiontune.cli`` in a subprocess; dataset locations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"
DOG_BREEDS = DATASETS / "dog_breeds_sample"


def run_cli(env, *args, timeout: float = 600, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m visiontune.cli ARGS``; with ``check`` a non-zero exit fails the test with the output."""
    proc = subprocess.run([sys.executable, "-m", "visiontune.cli", *map(str, args)], env=env, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"visiontune {' '.join(map(str, args))} exited {proc.returncode}\n"
                    f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"dataset {path} is not available")
    return path
