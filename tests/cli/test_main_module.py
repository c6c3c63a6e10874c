"""``python -m visiontune`` is the ``visiontune`` command, under plain Python and under ``torchrun -m``."""
from __future__ import annotations

import subprocess
import sys

from vt_cli_helpers import ROOT

import visiontune


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_is_the_commands_help():
    proc = run("-m", "visiontune", "--help")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "usage: visiontune [-h] [--version] COMMAND ..."
    assert proc.stdout == run("-m", "visiontune.cli", "--help").stdout


def test_a_usage_error_exits_2_with_one_line():
    proc = run("-m", "visiontune", "nosuch")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[-1] == ("visiontune: error: argument COMMAND: invalid choice: 'nosuch' (choose "
                                            "from 'train', 'predict', 'submit', 'export', 'report', 'inspect', 'demo')")


def test_a_user_mistake_exits_1_like_the_command(tmp_path):
    proc = run("-m", "visiontune", "report", str(tmp_path / "missing"))
    same = run("-m", "visiontune.cli", "report", str(tmp_path / "missing"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", same.stderr)
    assert proc.stderr.startswith("visiontune: error: ") and len(proc.stderr.splitlines()) == 1


def test_torchrun_starts_it_as_a_module():
    proc = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "visiontune", "--version")
    assert (proc.returncode, proc.stdout) == (0, f"visiontune {visiontune.__version__}\n")
