"""The learning-rate finder's sweep: its length, its rates and its stopping rule.

One epoch by default, as in fastai 0.7, but at least :data:`LR_FIND_MIN_ITERS` iterations (fastai 2's
default): one epoch of a small dataset is too few points for a curve. When the sweep is longer than an
epoch the data cycles. It stops early once the smoothed loss exceeds 4x its minimum, the minimum being
tracked from iteration :data:`LR_FIND_WARMUP` on (fastai's rule: a noisy start cannot stop the sweep).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .loop import TrainingDiverged
from .schedules import lr_find_rates

LR_FIND_MIN_ITERS = 100  # lr_find's default sweep when an epoch is shorter (fastai 2's num_it; the data cycles)
LR_FIND_WARMUP = 10  # lr_find tracks its best loss (for the 4x stop) only after this many iterations


def sweep_length(iters_per_epoch: int, num_it: int | None, verbose: bool) -> int:
    """``num_it``, or one epoch but at least :data:`LR_FIND_MIN_ITERS` (saying so when the data will cycle)."""
    if num_it is not None:
        return num_it
    num_it = max(iters_per_epoch, LR_FIND_MIN_ITERS)
    if num_it > iters_per_epoch and verbose:
        ipe = iters_per_epoch
        print(f"lr_find: one epoch is {ipe} iteration{'s' if ipe != 1 else ''}, too few for a curve; "
              f"sweeping {num_it} iterations over the training data {math.ceil(num_it / ipe)} times "
              "(num_it= sets the length)", flush=True)
    return num_it


def sweep_multipliers(start_lrs, end_lrs, num_it: int) -> np.ndarray:
    """The rate multipliers (over the start rates) of an exponential sweep to the end rates, in ``num_it`` steps."""
    start, end = np.asarray(start_lrs), np.asarray(end_lrs)
    return lr_find_rates(1.0, float(end[-1] / start[-1]), num_it)


def sweep(run_epoch: Callable, recorder, num_it: int, stop_div: bool = True) -> None:
    """Run epochs until ``num_it`` iterations or a stop, recording (rate, loss) in ``recorder``.

    ``run_epoch(epoch, it, on_batch_end)`` trains one epoch from iteration ``it`` and returns
    ``(mean loss, next iteration, stopped)``; ``on_batch_end(i, loss, lr)`` returns True to stop.
    A :class:`TrainingDiverged` ends the sweep as a stop does.
    """
    best, avg, it, epoch = math.inf, 0.0, 0, 0

    def on_batch(i, loss, lr):
        nonlocal best, avg
        recorder.record(lr, loss)
        avg = 0.98 * avg + 0.02 * loss
        smoothed = avg / (1 - 0.98 ** len(recorder.losses))
        if len(recorder.losses) > LR_FIND_WARMUP:
            best = min(best, smoothed)
        return stop_div and (not math.isfinite(loss) or smoothed > 4 * best)

    while it < num_it:
        try:
            _, it, stopped = run_epoch(epoch, it, on_batch)
        except TrainingDiverged:
            stopped = True
        epoch += 1
        if stopped:
            break
