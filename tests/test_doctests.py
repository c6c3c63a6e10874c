"""The ``>>>`` examples in the docstrings run, in every module of the package."""
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import visiontune

MODULES = ["visiontune"] + sorted(m.name for m in pkgutil.walk_packages(visiontune.__path__, "visiontune."))


def test_the_package_has_examples_to_run():
    assert len(MODULES) > 30 and "visiontune.train.schedules" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    runnable = [line for line in Path(module.__file__).read_text().splitlines()
                if line.lstrip().startswith(">>>") and "+SKIP" not in line]
    assert (result.attempted > 0) == bool(runnable), f"{len(runnable)} unskipped examples, {result.attempted} run"
