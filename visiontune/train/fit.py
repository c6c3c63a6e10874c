"""``fit``: the lesson's training loop over epochs (SGDR cycles, callbacks, checkpoints, divergence guard).

One epoch is :class:`visiontune.train.epoch.EpochRunner`'s (shared with ``lr_find``); the learning rates per
iteration are the pure schedules of :mod:`visiontune.train.schedules`. ``Learner.fit`` calls this.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..utils.seed import seed_everything
from . import distributed
from .callbacks import Callback
from .fit_log import FitLogs, epoch_progress, print_epoch
from .loop import TrainingDiverged
from .metrics import metric_name
from .recorder import Recorder
from .schedules import fit_multipliers, sgdr_epochs


def _check_rates(values, name: str) -> None:
    """``lrs`` / ``wds`` are finite and >= 0 (``fit(lr=inf)`` is refused before any step, not after it)."""
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or one number per layer group, got {values!r}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite numbers >= 0, got {values!r}")


def fit(learn, lrs, n_cycle: int, cycle_len: float | None = None, cycle_mult: float = 1, wds=None,
        callbacks: Sequence[Callback] = (), seed: int | None = None, checkpoint=None, resume: dict | None = None):
    """Train ``learn`` for ``n_cycle`` epochs or SGDR cycles (see :meth:`visiontune.train.learner.Learner.fit`)."""
    if n_cycle < 1:
        raise ValueError("n_cycle must be at least 1")
    _check_rates(lrs, "lrs")
    if wds is not None:
        _check_rates(wds, "wds")
    if seed is not None:
        seed_everything(seed)
    learn._sync_ranks()
    n_epochs = sgdr_epochs(n_cycle, cycle_len, cycle_mult)
    ipe = learn._epochs.iters_per_epoch()
    mults = fit_multipliers(n_cycle, cycle_len, cycle_mult, ipe)
    optimizer, base = learn._optimizer(lrs, wds)
    learn.sched = Recorder(kind="fit")
    callbacks = [*learn.callbacks, *callbacks]
    for cb in callbacks:
        cb.on_train_begin(learn)
    logs_all, it, stop, first_epoch = [], 0, False, 0
    epoch_base = int(torch.randint(0, 2**31 - 1, (1,)).item())
    if resume is not None:
        from .checkpoint import restore_fit_state

        first_epoch, it, epoch_base, logs_all = restore_fit_state(learn, optimizer, callbacks, resume)
    # the weights to fall back to if training diverges: on precomputed activations only the head changes
    watched = learn.head if learn.precompute else learn.model
    good_state = copy.deepcopy(watched.state_dict())
    try:
        for epoch in range(first_epoch, n_epochs):
            t0 = time.perf_counter()
            progress = epoch_progress(ipe, f"epoch {epoch}") if learn.verbose else None

            def on_batch(i, loss, lr):
                learn.sched.record(lr, loss)
                return any(cb.on_batch_end(learn, i, loss, lr) for cb in callbacks)

            trn_loss, it, stopped = learn._run_epoch(optimizer, base, mults, it, epoch_base + epoch, on_batch, progress)
            if progress is not None:
                progress.close()
            # rank 0's BatchNorm statistics (DDP keeps the parameters equal); the replicated head entirely
            distributed.broadcast_module_state(learn.head if learn.precompute else learn.model, params=learn.precompute)
            learn.sched.epoch_ends.append(it)
            vals = learn.validate()
            logs = {"epoch": epoch, "trn_loss": trn_loss, "val_loss": vals[0],
                    **{metric_name(m): v for m, v in zip(learn.metrics, vals[1:])},
                    "lr": base[-1], "seconds": time.perf_counter() - t0}
            if not all(math.isfinite(v) for v in vals):
                raise TrainingDiverged(f"the validation loss became {vals[0]} after epoch {epoch}; "
                                       "lower the learning rate (try learn.lr_find()) and train again")
            good_state = copy.deepcopy(watched.state_dict())
            logs_all.append(logs)
            learn.history.append(logs)
            if learn.verbose:
                print_epoch(epoch, trn_loss, vals, logs["seconds"], [metric_name(m) for m in learn.metrics],
                            header=epoch == first_epoch)
            if any([cb.on_epoch_end(learn, epoch, logs) for cb in callbacks]) or stopped:  # noqa: C419 (every callback sees the epoch)
                stop = True
            # rank 0's decision for all: a clock-based callback (TimeBudget) may answer differently per rank
            stop = distributed.broadcast_object(stop)
            if checkpoint is not None and distributed.is_main_process():
                from .checkpoint import save_checkpoint

                save_checkpoint(checkpoint, learn, optimizer, callbacks, epoch=epoch, iteration=it,
                                epoch_base=epoch_base, logs=logs_all, finished=stop or epoch == n_epochs - 1)
            if stop:
                break
    except TrainingDiverged:
        watched.load_state_dict(good_state)
        raise
    finally:
        learn._engines.clear()
    for cb in callbacks:
        cb.on_train_end(learn)
    return FitLogs(logs_all)
