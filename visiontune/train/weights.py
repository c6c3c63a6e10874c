"""A learner's weights file (``learn.save`` / ``learn.load``) and where it goes.

Weights are written as safetensors, atomically, under ``{data.path}/models`` as in the lesson, or under
a per-dataset folder in the cache when the data folder is read-only.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from torch import nn

from ..utils.atomic import atomic_write


def weights_bytes(model: nn.Module, metadata: dict[str, str]) -> bytes:
    """``model``'s weights (on the CPU) with ``metadata``, as safetensors bytes."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, metadata=metadata)


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write ``model``'s weights (on the CPU) with ``metadata`` to ``path`` atomically."""
    data = weights_bytes(model, metadata)
    with atomic_write(path, "wb") as f:
        f.write(data)


def load_weights(model: nn.Module, path: Path, device) -> None:
    """Read weights written by :func:`save_weights` into ``model``; a file that does not fit says so."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"no saved weights at {path}; learn.save(name) writes them there")
    state = load_file(str(path), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]} "
                         "(was it saved from another architecture or number of classes?)")


def writable_models_path(data_path: Path) -> Path:
    """``{data.path}/models`` as in the lesson, or a per-dataset folder in the cache if that is read-only."""
    target = data_path / "models"
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return target
    except OSError:
        from ..features.cache import default_cache_dir

        tag = hashlib.sha256(str(data_path.resolve()).encode()).hexdigest()[:12]
        fallback = default_cache_dir() / "models" / f"{data_path.name}-{tag}"
        fallback.mkdir(parents=True, exist_ok=True)
        print(f"note: {target} is not writable; saving models under {fallback}", file=sys.stderr)
        return fallback
