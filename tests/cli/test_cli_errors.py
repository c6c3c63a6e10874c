"""Conventions: --help with examples everywhere; user mistakes give one line, a non-zero exit, no traceback.

One case of each kind runs through a subprocess (the real entry point); the rest call ``main(argv)``
in-process, which is the same code path without the ~5-10 s interpreter start.
"""
from __future__ import annotations

import subprocess

import pytest
from vt_cli_helpers import HYMENOPTERA, need, run_cli

from visiontune.cli import main


def call(capsys, *args) -> subprocess.CompletedProcess:
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)

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
    assert "SGDR" in proc.stdout and "examples:" in proc.stdout


def _one_line_error(proc, *fragments):
    assert proc.returncode not in (0, None), proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("visiontune: error: "), lines[0]
    for f in fragments:
        assert f in lines[0], lines[0]


def test_missing_data_folder(cli_env, tmp_path, capsys):
    proc = run_cli(cli_env, "train", tmp_path / "nope", "--out", tmp_path / "run", check=False)
    _one_line_error(proc, "does not exist")
    proc = call(capsys, "inspect", tmp_path / "nope")
    _one_line_error(proc, "does not exist")


def test_csv_without_the_label_column(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "labels.csv").write_text("id\nabc\ndef\n")
    out = tmp_path.with_name(tmp_path.name + "-run")  # not inside the data folder (refused since issue 17)
    proc = call(capsys, "train", tmp_path, "--csv", "labels.csv", "--out", out)
    _one_line_error(proc, "labels.csv", "two columns")


def test_unknown_architecture(tmp_path, capsys):
    data = need(HYMENOPTERA)
    proc = call(capsys, "train", data, "--arch", "resnet_does_not_exist", "--out", tmp_path / "run")
    _one_line_error(proc, "unknown architecture 'resnet_does_not_exist'")


def test_missing_model_and_run(tmp_path, capsys):
    proc = call(capsys, "predict", tmp_path / "no-run", tmp_path)
    _one_line_error(proc, "does not exist")
    proc = call(capsys, "export", tmp_path)
    _one_line_error(proc, "config.json")


def test_verbose_shows_the_traceback(cli_env, tmp_path):
    proc = run_cli(cli_env, "inspect", tmp_path / "nope", "--verbose", check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("visiontune: error: ")


def test_usage_errors(tmp_path, capsys):
    proc = call(capsys, "train")
    assert proc.returncode == 2 and "DATA is required" in proc.stderr and "Traceback" not in proc.stderr
    proc = call(capsys, "train", tmp_path, "--budget", "-3")
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
    proc = call(capsys, "train", tmp_path, "--multi-label", "--regression", "--csv", "x.csv")
    _one_line_error(proc, "exclude each other")


def test_inspect(capsys):
    data = need(HYMENOPTERA)
    proc = call(capsys, "inspect", data)
    assert "train: 245 files in 2 class(es)" in proc.stdout
    assert "imageNotFound.gif" in proc.stdout


def test_only_known_user_mistakes_print_as_user_errors(capsys, monkeypatch):
    """A bug (KeyError, an OSError with no file behind it) says it is internal; a missing file does not."""
    import errno

    from visiontune import cli

    def raising(exc):
        def fail(args):
            raise exc
        return fail

    cases = [
        (KeyError("phase"), "visiontune: error: KeyError: 'phase' (an internal error; --verbose shows the traceback)"),
        (OSError(errno.EBADF, "Bad file descriptor"),
         "visiontune: error: OSError: [Errno 9] Bad file descriptor (an internal error; --verbose shows the traceback)"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "photos/x.jpg"),
         "visiontune: error: [Errno 2] No such file or directory: 'photos/x.jpg'"),
        (OSError(errno.ENOSPC, "No space left on device"), "visiontune: error: [Errno 28] No space left on device"),
        (ValueError("--size must be positive"), "visiontune: error: --size must be positive"),
        (FileNotFoundError("data folder d does not exist"), "visiontune: error: data folder d does not exist"),
    ]
    for exc, want in cases:
        monkeypatch.setattr(cli, "cmd_inspect", raising(exc))
        got = call(capsys, "inspect", "anything")
        assert (got.returncode, got.stderr.strip().splitlines()[-1]) == (1, want)
