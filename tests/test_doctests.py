"""The ``>>>`` examples in the docstrings run."""
import doctest
import importlib

import pytest

MODULES = [
    "visiontune", "visiontune.train.schedules", "visiontune.train.metrics", "visiontune.train.optim",
    "visiontune.models.heads", "visiontune.models.registry", "visiontune.utils.atomic", "visiontune.features.cache",
    "visiontune.features.engine", "visiontune.transforms.augment", "visiontune.transforms.batched",
    "visiontune.data.gpu_decode", "visiontune.train.distributed", "visiontune.utils.lazy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
