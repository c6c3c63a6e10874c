"""Package attributes that import their module on first use (PEP 562).

A package's ``__init__`` names what it exports and where each name lives; nothing heavy (torch,
timm) is imported until one of those names is used, so ``visiontune --help`` and ``visiontune
predict`` on an exported model start without torch.

>>> import types
>>> pkg = types.ModuleType("pkg")
>>> pkg.__getattr__, pkg.__dir__, pkg.__all__ = lazy_exports("json", {".decoder": ("JSONDecodeError",)})
>>> pkg.__all__
['JSONDecodeError']
>>> pkg.__getattr__("JSONDecodeError").__name__
'JSONDecodeError'
"""
from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose names in ``exports`` (module -> names,
    modules relative to the package) load on first access and are then cached in its namespace."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace = sys.modules.get(package)
        if namespace is not None:
            setattr(namespace, name, value)  # later lookups skip __getattr__
        return value

    def __dir__():
        namespace = sys.modules.get(package)
        return sorted(set(vars(namespace) if namespace is not None else ()) | set(module_of))

    return __getattr__, __dir__, sorted(module_of)
