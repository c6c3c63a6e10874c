"""Print the README's numbered command N (1 or 2), so CI runs exactly what README.md tells a user.

The commands live in the fenced ``bash`` block under the ``## Two commands`` heading: each is the
line after a comment ``# N. ...``. CI runs them (``bash -c "$(python3 .ci/readme_commands.py 1)"``)
and ``tests/test_readme_commands.py`` checks them with the same parser, so README and CI cannot drift.

    python3 .ci/readme_commands.py 1     # the bare install + `visiontune demo`
    python3 .ci/readme_commands.py 2     # the install with the test extras + the test suite

Standard library only: CI runs it before any venv exists.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Two commands"


def section_block(text: str, heading: str = SECTION) -> list[str]:
    """The lines of the first fenced ``bash`` block in the section under ``heading``.

    >>> section_block("# x\\n## Two commands\\ntext\\n```bash\\n# 1. a\\nls\\n```\\n## Next\\n")
    ['# 1. a', 'ls']
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise ValueError(f"README has no {heading!r} section") from None
    block: list[str] | None = None
    for line in lines[start + 1:]:
        if block is None:
            if line.startswith("## "):
                break  # the next section: no block in this one
            if line.strip() == "```bash":
                block = []
        elif line.strip() == "```":
            return block
        else:
            block.append(line)
    raise ValueError(f"README's {heading!r} section has no complete ```bash block")


def commands(text: str) -> dict[int, str]:
    """``{N: command}``: each ``# N. ...`` comment line of the block and the line after it.

    >>> commands("## Two commands\\n```bash\\n# 1. first\\npip install .\\n\\n# 2. second\\npytest\\n```\\n")
    {1: 'pip install .', 2: 'pytest'}
    """
    block = section_block(text)
    found: dict[int, str] = {}
    for i, line in enumerate(block):
        m = re.match(r"#\s*(\d+)\.\s", line.strip() + " ")
        if not m:
            continue
        n = int(m.group(1))
        command = block[i + 1].strip() if i + 1 < len(block) else ""
        if not command or command.startswith("#"):
            raise ValueError(f"README's command {n} comment is not followed by a command line")
        if n in found:
            raise ValueError(f"README numbers two commands {n}")
        found[n] = command
    if not found:
        raise ValueError(f"README's {SECTION!r} block has no '# N.' comment lines")
    return found


def command(n: int, readme: Path = README) -> str:
    """README's command ``n`` (ValueError naming what is missing)."""
    found = commands(readme.read_text(encoding="utf-8"))
    if n not in found:
        raise ValueError(f"README's {SECTION!r} block has no command {n} (it has {sorted(found)})")
    return found[n]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python3 .ci/readme_commands.py N", file=sys.stderr)
        return 2
    try:
        print(command(int(argv[0])))
    except ValueError as e:
        print(f"readme_commands: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
