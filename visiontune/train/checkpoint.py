"""Resumable training state, written atomically after every epoch and read back safely.

A checkpoint is a plain dict of tensors, numbers and strings saved with ``torch.save`` and read with
``torch.load(weights_only=True)``: no arbitrary objects are ever unpickled. It holds the model's
weights, the optimizer's state, where the schedule stands (epoch, iteration, the shuffling seed),
the RNG states, the callbacks' state and the per-epoch logs, so a killed run resumes and finishes
with the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from ..utils.atomic import atomic_write_bytes

VERSION = 1
MAX_PYTHON_RNG_CHARS = 100_000  # repr(random.getstate()) is ~7 kB


class CheckpointMismatch(ValueError):
    """A checkpoint that loads but does not fit this model and optimizer (or holds an impossible RNG state)."""


def save_checkpoint(path, learner, optimizer, callbacks, *, epoch: int, iteration: int, epoch_base: int,
                    logs: list[dict], finished: bool, extra: dict | None = None) -> None:
    np_state = np.random.get_state()
    mine = learner.state_dict()
    state = {
        "version": VERSION,
        "model": mine["model"],
        "optimizer": optimizer.state_dict(),
        "epoch": int(epoch),
        "iteration": int(iteration),
        "epoch_base": int(epoch_base),
        "finished": bool(finished),
        "logs": [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()} for row in logs],
        "callbacks": [cb.state_dict() for cb in callbacks],
        "rng_torch": torch.get_rng_state(),
        "rng_numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                      float(np_state[4])],
        "rng_python": repr(random.getstate()),
        "sched_lrs": mine["sched_lrs"],
        "sched_losses": mine["sched_losses"],
        "n_frozen": mine["n_frozen"],
        "precompute": mine["precompute"],
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> dict:
    """Read a checkpoint with ``weights_only=True``; a crafted pickle fails safely with a clear error."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a visiontune checkpoint that can be loaded safely ({type(e).__name__}); "
                         "it was not unpickled") from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise ValueError(f"{path} is not a visiontune checkpoint (version {VERSION})")
    return state


def _python_rng_state(text):
    import ast

    if not isinstance(text, str) or len(text) > MAX_PYTHON_RNG_CHARS:
        raise CheckpointMismatch("its Python RNG state is not one Python writes")
    try:
        value = ast.literal_eval(text)
        random.Random().setstate(value)  # tried on a scratch generator first
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise CheckpointMismatch("its Python RNG state is not one Python writes") from None
    return value


def _numpy_rng_state(n):
    try:
        state = (n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4]))
        np.random.RandomState().set_state(state)  # tried on a scratch generator first
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        raise CheckpointMismatch("its NumPy RNG state is not one NumPy writes") from None
    return state


def check_fits(state: dict, learner, optimizer=None) -> None:
    """Raise :class:`CheckpointMismatch` unless ``state`` can be restored into ``learner`` (and ``optimizer``)
    as it is: the same weights (names, shapes, types), optimizer groups and state shapes, valid RNG states
    and counters. Nothing is changed, so a mismatch leaves the learner as it was."""
    want = learner.model.state_dict()
    got = state.get("model")
    if not isinstance(got, dict) or set(got) != set(want):
        missing = sorted(set(want) - set(got or {}))[:1] + sorted(set(got or {}) - set(want))[:1]
        raise CheckpointMismatch(f"its weights do not fit the model (names differ: {', '.join(missing) or 'none'})")
    for k, v in want.items():
        g = got[k]
        if not isinstance(g, torch.Tensor) or g.shape != v.shape or g.dtype != v.dtype:
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise CheckpointMismatch(f"its weights do not fit the model ({k}: {shape}, the model has {tuple(v.shape)})")
    for key in ("epoch", "iteration", "epoch_base"):
        if not isinstance(state.get(key), int) or isinstance(state.get(key), bool) or state[key] < 0:
            raise CheckpointMismatch(f"its {key} is {state.get(key)!r}")
    if not isinstance(state.get("logs", []), list) or not isinstance(state.get("callbacks", []), list):
        raise CheckpointMismatch("its logs or callbacks are not lists")
    if any(not isinstance(c, dict) for c in state.get("callbacks", [])):
        raise CheckpointMismatch("its callbacks' state is not a list of dicts")
    rng = state.get("rng_torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise CheckpointMismatch("its torch RNG state is not one torch writes")
    try:
        torch.Generator().set_state(rng)  # tried on a scratch generator first
    except (RuntimeError, TypeError, ValueError):
        raise CheckpointMismatch("its torch RNG state is not one torch writes") from None
    _numpy_rng_state(state.get("rng_numpy"))
    _python_rng_state(state.get("rng_python"))
    if optimizer is not None:
        opt, mine = state.get("optimizer"), optimizer.state_dict()
        groups = opt.get("param_groups") if isinstance(opt, dict) else None
        if not isinstance(groups, list) or len(groups) != len(mine["param_groups"]) or any(
                not isinstance(g, dict) or len(g.get("params", ())) != len(m["params"])
                for g, m in zip(groups, mine["param_groups"])):
            raise CheckpointMismatch("its optimizer state does not fit the layer groups being trained")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        ids = [i for g in groups for i in g["params"]]
        by_id = dict(zip(ids, params))
        for i, entry in (opt.get("state") or {}).items():
            if i not in by_id or not isinstance(entry, dict):
                raise CheckpointMismatch("its optimizer state names a parameter the model does not have")
            for name, v in entry.items():
                if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape != by_id[i].shape:
                    raise CheckpointMismatch(f"its optimizer state ({name}) does not fit the model's weights")


def restore_fit_state(learner, optimizer, callbacks, state: dict):
    """Put a checkpoint back: returns (first epoch to run, iteration, shuffling seed base, logs so far).

    Everything is checked first (:func:`check_fits`): a checkpoint that does not fit raises
    :class:`CheckpointMismatch` with the learner, optimizer and RNGs untouched.
    """
    check_fits(state, learner, optimizer)
    for cb, cb_state in zip(callbacks, state.get("callbacks", [])):  # the fit's own, fresh callbacks
        try:
            cb.load_state_dict(cb_state)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise CheckpointMismatch(f"its state of {type(cb).__name__} is not one it writes") from None
    learner.load_state_dict(state)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_torch"])
    np.random.set_state(_numpy_rng_state(state["rng_numpy"]))
    random.setstate(_python_rng_state(state["rng_python"]))
    return state["epoch"] + 1, state["iteration"], state["epoch_base"], list(state.get("logs", []))
