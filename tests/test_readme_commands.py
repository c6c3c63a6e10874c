"""README's two commands, read with the parser CI uses (.ci/readme_commands.py), and what CI does with them.

Command 1 must be a bare install (no extras) that runs ``visiontune demo``, which works only because the
ONNX export's packages are core dependencies; command 2 installs the test extras and runs pytest. CI
(.ci/run) must get both from the parser, not from a copy, so README and CI cannot drift apart.
"""
from __future__ import annotations

import doctest
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_RUN = ROOT / ".ci" / "run"


def load_parser():
    spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parser = load_parser()


def steps(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&")]


def test_command_1_is_a_bare_install_that_runs_the_demo():
    assert steps(parser.command(1)) == ["python3 -m venv .venv", ". .venv/bin/activate", "pip install .",
                                        "visiontune demo"]


def test_command_2_installs_the_test_extras_and_runs_pytest():
    assert steps(parser.command(2)) == ["python3 -m venv .venv", ". .venv/bin/activate",
                                        "pip install '.[dev,bench]'", "python -m pytest"]


def test_the_readme_has_exactly_two_numbered_commands():
    assert sorted(parser.commands((ROOT / "README.md").read_text(encoding="utf-8"))) == [1, 2]


def test_the_script_prints_each_command_and_refuses_others():
    script = [sys.executable, str(ROOT / ".ci" / "readme_commands.py")]
    one = subprocess.run([*script, "1"], capture_output=True, text=True, timeout=60)
    assert (one.returncode, one.stdout, one.stderr) == (0, parser.command(1) + "\n", "")
    three = subprocess.run([*script, "3"], capture_output=True, text=True, timeout=60)
    assert (three.returncode, three.stdout) == (1, "")
    assert three.stderr == "readme_commands: README's '## Two commands' block has no command 3 (it has [1, 2])\n"
    bad = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stderr) == (2, "usage: python3 .ci/readme_commands.py N\n")


@pytest.mark.parametrize("text, message", [
    ("# x\n## Other\n```bash\n# 1. a\nls\n```\n", "README has no '## Two commands' section"),
    ("## Two commands\ntext\n## Next\n```bash\n# 1. a\nls\n```\n",
     "README's '## Two commands' section has no complete ```bash block"),
    ("## Two commands\n```bash\n# 1. a\nls\n", "README's '## Two commands' section has no complete ```bash block"),
    ("## Two commands\n```bash\n# 1. a\n# 2. b\nls\n```\n", "README's command 1 comment is not followed by a command line"),
    ("## Two commands\n```bash\n# 1. a\nls\n# 1. b\npwd\n```\n", "README numbers two commands 1"),
    ("## Two commands\n```bash\nls\n```\n", "README's '## Two commands' block has no '# N.' comment lines"),
])
def test_the_parser_names_what_is_wrong_with_the_readme(text, message):
    with pytest.raises(ValueError) as e:
        parser.commands(text)
    assert str(e.value) == message


def test_the_parsers_examples_run():
    result = doctest.testmod(parser)
    assert (result.failed, result.attempted) == (0, 2)


def test_ci_runs_both_readme_commands_from_the_parser_in_order():
    text = CI_RUN.read_text(encoding="utf-8")
    assert 'COMMAND_1="$(python3 .ci/readme_commands.py 1)"' in text
    assert 'COMMAND_2="$(python3 .ci/readme_commands.py 2)"' in text
    run_1, run_2 = text.index('bash -c "$COMMAND_1"'), text.index('bash -c "$COMMAND_2"')
    check = text.index("runs/demo/report.html runs/demo/model.onnx runs/demo/model.json")
    between = text[run_1:run_2]
    assert run_1 < check < run_2 and "rm -rf .venv" in between
    # CI installs nothing by other means, and keeps pytest's options out of the verbatim command
    assert "pip install" not in text.split("set -euo pipefail", 1)[1]
    assert 'PYTEST_ADDOPTS="-q -p no:cacheprovider --basetemp $SCRATCH/pytest"' in text
    assert '[ "$status" = 5 ]' in text


def test_ci_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_the_onnx_export_packages_are_core_and_openvino_is_optional():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {dep.split(">=")[0] for dep in project["dependencies"]}
    assert {"onnx", "onnxscript", "onnxruntime"} <= names and "openvino" not in names
    assert project["optional-dependencies"]["cpu-fast"] == ["openvino>=2024.3"]
