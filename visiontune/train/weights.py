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


class WeightsFileError(ValueError):
    """A weights file that cannot be used: damaged, of another model, or holding NaN / Inf values."""


def read_weights(path: Path, device="cpu") -> dict:
    """The tensors of a safetensors weights file, refused with one line naming the file when it is
    damaged or holds a NaN / Inf value (such weights would predict ``nan`` for every image)."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(str(path), device=str(device))
    except Exception as e:  # noqa: BLE001 - safetensors' own error types: a damaged or foreign file
        raise WeightsFileError(f"cannot load {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                               "): damaged, or not a weights file saved by visiontune?") from None
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise WeightsFileError(f"{path} holds {bad} non-finite value(s) (NaN or Inf) in {name}: such weights "
                                   "predict nan for every image; use weights from a good epoch, or train again")
    return state


def load_state_checked(model: nn.Module, state: dict, path: Path) -> None:
    """Put ``state`` into ``model``; a missing, unexpected or wrong-shape tensor is one line naming ``path``."""
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        k, theirs, ours = wrong[0]
        raise WeightsFileError(f"{path} does not fit this model: {k} is {theirs} in the file, {ours} in the model"
                               + (f" (+{len(wrong) - 1} more tensors)" if len(wrong) > 1 else "")
                               + "; was it saved from another architecture or number of classes?")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise WeightsFileError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]} "
                               "(was it saved from another architecture or number of classes?)")
    model.load_state_dict(state)


def load_weights(model: nn.Module, path: Path, device) -> None:
    """Read weights written by :func:`save_weights` into ``model``; a file that does not fit, or holds NaN /
    Inf values, says so in one line naming the file (and the mismatching tensor)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved weights at {path}; learn.save(name) writes them there")
    load_state_checked(model, read_weights(path, device), path)


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
