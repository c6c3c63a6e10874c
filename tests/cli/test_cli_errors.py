"""Conventions: --help with examples everywhere; user mistakes give one line, a non-zero exit, no traceback."""
from __future__ import annotations

import pytest
from vt_cli_helpers import HYMENOPTERA, need, run_cli

COMMANDS = ("train", "predict", "submit", "export", "report", "inspect", "demo")


def test_help_everywhere_with_examples(cli_env):
    from visiontune.cli import build_parser

    parser = build_parser()
    assert "examples:" in parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "examples:" in text and f"visiontune {name}" in text, name
        assert "--quiet" in text and "--verbose" in text, name
    proc = run_cli(cli_env, "train", "--help")  # the real entry point, once
    assert "Overview" not in proc.stdout and "SGDR" in proc.stdout and "examples:" in proc.stdout


def _one_line_error(proc, *fragments):
    assert proc.returncode not in (0, None), proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("visiontune: error: "), lines[0]
    for f in fragments:
        assert f in lines[0], lines[0]


def test_missing_data_folder(cli_env, tmp_path):
    proc = run_cli(cli_env, "train", tmp_path / "nope", "--out", tmp_path / "run", check=False)
    _one_line_error(proc, "does not exist")
    proc = run_cli(cli_env, "inspect", tmp_path / "nope", check=False)
    _one_line_error(proc, "does not exist")


def test_csv_without_the_label_column(cli_env, tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "labels.csv").write_text("id\nabc\ndef\n")
    proc = run_cli(cli_env, "train", tmp_path, "--csv", "labels.csv", "--out", tmp_path / "run", check=False)
    _one_line_error(proc, "labels.csv", "two columns")


def test_unknown_architecture(cli_env, tmp_path):
    data = need(HYMENOPTERA)
    proc = run_cli(cli_env, "train", data, "--arch", "resnet_does_not_exist", "--out", tmp_path / "run", check=False)
    _one_line_error(proc, "unknown architecture 'resnet_does_not_exist'")


def test_missing_model_and_run(cli_env, tmp_path):
    proc = run_cli(cli_env, "predict", tmp_path / "no-run", tmp_path, check=False)
    _one_line_error(proc, "does not exist")
    proc = run_cli(cli_env, "export", tmp_path, check=False)
    _one_line_error(proc, "config.json")


def test_verbose_shows_the_traceback(cli_env, tmp_path):
    proc = run_cli(cli_env, "inspect", tmp_path / "nope", "--verbose", check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("visiontune: error: ")


def test_usage_errors(cli_env, tmp_path):
    proc = run_cli(cli_env, "train", check=False)
    assert proc.returncode == 2 and "DATA is required" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(cli_env, "train", tmp_path, "--budget", "-3", check=False)
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
    proc = run_cli(cli_env, "train", tmp_path, "--multi-label", "--regression", "--csv", "x.csv", check=False)
    _one_line_error(proc, "exclude each other")


@pytest.mark.parametrize("cmd", ["inspect"])
def test_inspect(cli_env, cmd):
    data = need(HYMENOPTERA)
    proc = run_cli(cli_env, cmd, data)
    assert "train: 245 files in 2 class(es)" in proc.stdout
    assert "imageNotFound.gif" in proc.stdout
