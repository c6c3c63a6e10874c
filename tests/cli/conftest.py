"""CLI tests: ``python -m visiontune.cli`` in subprocesses, sharing one activation cache per session.

Real photos come from ``../shared/datasets`` (beside the project root). Runs that several tests use
(the hymenoptera run, the dog-breeds run) are trained once per session by fixtures.
"""
from __future__ import annotations

import os

import pytest
from vt_cli_helpers import DOG_BREEDS, HYMENOPTERA, need, run_cli


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    env = dict(os.environ)
    env["VISIONTUNE_CACHE"] = str(tmp_path_factory.mktemp("vt-cache"))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("VISIONTUNE_ENGINE", None)
    return env


@pytest.fixture(scope="session")
def hymenoptera_run(cli_env, tmp_path_factory):
    """A --fast run on hymenoptera (precompute + head: the reduced budget the issue allows).

    288 px: efficientnet_lite0 features at 224 px give 0.93-0.96 validation accuracy depending on the seed;
    at 288 px 0.96-0.98 (measured over 4 seeds x 2 rates), so the 0.95 bar is not a coin toss.
    """
    data = need(HYMENOPTERA)
    run = tmp_path_factory.mktemp("runs") / "ants"
    proc = run_cli(cli_env, "train", data, "--out", run, "--fast", "--size", "288", "--precompute-aug", "1", "--tta", "2")
    return run, proc


@pytest.fixture(scope="session")
def dog_breeds_run(cli_env, tmp_path_factory):
    data = need(DOG_BREEDS)
    run = tmp_path_factory.mktemp("runs") / "breeds"
    proc = run_cli(cli_env, "train", data, "--csv", "labels.csv", "--suffix", ".jpg", "--fast", "--size", "128",
                   "--precompute-aug", "1", "--tta", "0", "--out", run, "--quiet")
    return run, proc
