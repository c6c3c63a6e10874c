"""Who prints and who touches the run folder under torchrun: rank 0 (one process: the only one).

Every rank runs the recipe, but the run folder has one writer and one reader: rank 0. Its decisions that
depend on the clock or on a measurement are broadcast, so all ranks take the same path through the
collectives (a rank that took another would wait forever).
"""
from __future__ import annotations

import functools

from ..train import distributed
from ..utils.text import printable

__all__ = ["log", "rank0_reads", "rank0_writes"]


def log(cfg_or_verbose, msg: str) -> None:
    verbose = cfg_or_verbose if isinstance(cfg_or_verbose, bool) else cfg_or_verbose.verbose
    if verbose and distributed.is_main_process():  # under torchrun only rank 0 prints
        # a file or class name in msg cannot send ESC sequences to the terminal (its own lines are kept)
        print("\n".join(printable(line) for line in str(msg).split("\n")), flush=True)


def rank0_writes(fn):
    """``fn`` writes into the run folder: under torchrun it runs on rank 0 only (a no-op returning None elsewhere)."""

    @functools.wraps(fn)
    def on_rank0(*args, **kwargs):
        return fn(*args, **kwargs) if distributed.is_main_process() else None

    return on_rank0


def rank0_reads(fn, *args):
    """``fn(*args)`` on rank 0; its result (or its exception) on every rank, so the others need no run folder."""
    if not distributed.is_distributed():
        return fn(*args)
    result = error = None
    if distributed.is_main_process():
        try:
            result = fn(*args)
        except Exception as e:  # re-raised on every rank below
            error = e
    result, error = distributed.broadcast_object((result, error))
    if error is not None:
        raise error
    return result
