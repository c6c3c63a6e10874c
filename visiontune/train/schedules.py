"""Learning-rate schedules as pure arithmetic: no optimizer, no data, easy to test.

Every function maps an iteration number to a multiplier (or a rate). The learner multiplies
each layer group's base rate by the multiplier, so differential learning rates keep their ratios.

SGDR (the lesson's ``fit(lr, n_cycle, cycle_len=, cycle_mult=)``): cycle ``k`` lasts
``cycle_len * cycle_mult**k`` epochs; inside a cycle the rate follows half a cosine from the
base rate down to zero, ``lr * (1 + cos(pi * t / T)) / 2``, and restarts at the base rate. (fastai 0.7's code also held
the first 1/20 of the first cycle at ``lr / 100``, a detail the lesson never shows; here every
cycle starts at the base rate, so ``sched.plot_lr()`` draws the lesson's saw teeth exactly.)

>>> [round(m, 3) for m in sgdr_multipliers(n_cycle=2, cycle_len=1, cycle_mult=2, iters_per_epoch=2)]
[1.0, 0.5, 1.0, 0.854, 0.5, 0.146]
>>> sgdr_epochs(3, cycle_len=1, cycle_mult=2)
7
"""
from __future__ import annotations

import math

import numpy as np


def sched_cos(start: float, end: float, pos: float) -> float:
    """Half a cosine from ``start`` (pos=0) to ``end`` (pos=1)."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def sched_exp(start: float, end: float, pos: float) -> float:
    """Exponential from ``start`` to ``end``: used by the learning-rate finder."""
    return start * (end / start) ** pos


def cycle_lengths(n_cycle: int, cycle_len: float, cycle_mult: float = 1) -> list[float]:
    """Length in epochs of each SGDR cycle."""
    return [cycle_len * cycle_mult**k for k in range(n_cycle)]


def sgdr_epochs(n_cycle: int, cycle_len: float | None = None, cycle_mult: float = 1) -> int:
    """How many epochs ``fit(lr, n_cycle, cycle_len, cycle_mult)`` runs."""
    if cycle_len is None:
        return int(n_cycle)
    return int(round(sum(cycle_lengths(n_cycle, cycle_len, cycle_mult))))


def sgdr_multipliers(n_cycle: int, cycle_len: float, cycle_mult: float, iters_per_epoch: int) -> list[float]:
    """Per-iteration multiplier of the base rate for SGDR (cosine annealing with warm restarts)."""
    out: list[float] = []
    for length in cycle_lengths(n_cycle, cycle_len, cycle_mult):
        n = max(1, int(round(length * iters_per_epoch)))
        out += [sched_cos(1.0, 0.0, t / n) for t in range(n)]
    return out


def constant_multipliers(n_epochs: int, iters_per_epoch: int) -> list[float]:
    """The lesson's ``fit(lr, n)`` without ``cycle_len``: a constant rate for ``n`` epochs."""
    return [1.0] * (n_epochs * iters_per_epoch)


def fit_multipliers(n_cycle: int, cycle_len: float | None, cycle_mult: float, iters_per_epoch: int) -> list[float]:
    """The multipliers ``fit`` uses: constant without ``cycle_len``, SGDR with it."""
    if cycle_len is None:
        return constant_multipliers(n_cycle, iters_per_epoch)
    return sgdr_multipliers(n_cycle, cycle_len, cycle_mult, iters_per_epoch)


def lr_find_rates(start_lr: float, end_lr: float, num_it: int) -> np.ndarray:
    """Exponentially spaced rates from ``start_lr`` to ``end_lr`` over ``num_it`` iterations."""
    if num_it < 2:
        raise ValueError("lr_find needs at least 2 iterations")
    return np.array([sched_exp(start_lr, end_lr, i / (num_it - 1)) for i in range(num_it)])


def smooth(values, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (what the lr finder plots)."""
    avg, out = 0.0, []
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * float(v)
        out.append(avg / (1 - beta**i))
    return np.array(out)


def suggest_lr(lrs, losses, skip_start: int = 1, skip_end: int = 1) -> tuple[float, str]:
    """Suggest a rate from an lr_find sweep: the rate at the minimum smoothed loss, divided by 10.

    This is the lesson's rule, "the highest learning rate where the loss is still clearly
    improving": one order of magnitude before the loss bottoms out.
    """
    lrs, sm = np.asarray(lrs, dtype=float), smooth(losses, beta=0.7)
    n = len(lrs)
    lo, hi = min(skip_start, n - 1), max(n - skip_end, min(skip_start, n - 1) + 1)
    i = lo + int(np.nanargmin(sm[lo:hi]))
    return float(lrs[i] / 10), "min_loss/10: the rate at the lowest smoothed loss, divided by 10"
