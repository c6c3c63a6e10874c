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


def save_checkpoint(path, learner, optimizer, callbacks, *, epoch: int, iteration: int, epoch_base: int,
                    logs: list[dict], finished: bool, extra: dict | None = None) -> None:
    np_state = np.random.get_state()
    state = {
        "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in learner.model.state_dict().items()},
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
        "sched_lrs": list(learner.sched.lrs),
        "sched_losses": list(learner.sched.losses),
        "n_frozen": int(learner._n_frozen),
        "precompute": bool(learner.precompute),
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


def restore_fit_state(learner, optimizer, callbacks, state: dict):
    """Put a checkpoint back: returns (first epoch to run, iteration, shuffling seed base, logs so far)."""
    import ast

    learner.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    for cb, cb_state in zip(callbacks, state.get("callbacks", [])):
        cb.load_state_dict(cb_state)
    torch.set_rng_state(state["rng_torch"])
    n = state["rng_numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    random.setstate(ast.literal_eval(state["rng_python"]))
    learner.sched.lrs[:] = state.get("sched_lrs", [])
    learner.sched.losses[:] = state.get("sched_losses", [])
    return state["epoch"] + 1, state["iteration"], state["epoch_base"], list(state.get("logs", []))
