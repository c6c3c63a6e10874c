"""Files that each do one thing: no module of the package over 500 lines (issue 14)."""
from pathlib import Path

import visiontune

MAX_LINES = 500


def test_no_module_over_500_lines():
    package = Path(visiontune.__file__).parent
    sizes = {str(p.relative_to(package.parent)): len(p.read_text(encoding="utf-8").splitlines())
             for p in package.rglob("*.py")}
    assert len(sizes) > 50 and max(sizes.values()) > 100  # the walk found the package
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
