"""A small, explicit callback set for ``fit``.

A callback may implement any of: ``on_train_begin(learner)``, ``on_batch_end(learner, iteration,
loss, lr) -> bool``, ``on_epoch_end(learner, epoch, logs) -> bool``, ``on_train_end(learner)``.
Returning True from the ``*_end`` hooks asks ``fit`` to stop. Callbacks never write into the
learner's attributes; they keep their own state (``state_dict`` / ``load_state_dict`` for resuming).
"""
from __future__ import annotations

import copy
import time


class Callback:
    def on_train_begin(self, learner) -> None: ...

    def on_batch_end(self, learner, iteration: int, loss: float, lr: float) -> bool:
        return False

    def on_epoch_end(self, learner, epoch: int, logs: dict) -> bool:
        return False

    def on_train_end(self, learner) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class KeepBest(Callback):
    """Remember the weights of the epoch with the best ``monitor`` value (default: lowest val_loss).

    ``restore_at_end=True`` puts them back into the model when training ends.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min", restore_at_end: bool = True):
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.monitor, self.mode, self.restore_at_end = monitor, mode, restore_at_end
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict | None = None

    def _better(self, v: float) -> bool:
        return self.best is None or (v < self.best if self.mode == "min" else v > self.best)

    def on_epoch_end(self, learner, epoch, logs):
        v = logs.get(self.monitor)
        if v is not None and self._better(v):
            self.best, self.best_epoch = float(v), epoch
            self.best_state = copy.deepcopy(learner.model.state_dict())
        return False

    def on_train_end(self, learner):
        if self.restore_at_end and self.best_state is not None:
            learner.model.load_state_dict(self.best_state)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 2, min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, learner, epoch, logs):
        v = logs.get(self.monitor)
        if v is None:
            return False
        improved = self.best is None or (v < self.best - self.min_delta if self.mode == "min" else v > self.best + self.min_delta)
        if improved:
            self.best, self.wait = float(v), 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state.get("best"), state.get("wait", 0)


class TimeBudget(Callback):
    """Stop at the end of the first epoch that would not finish within ``deadline`` (time.monotonic())."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self._epoch_start = None
        self.stopped = False

    def on_train_begin(self, learner):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, learner, epoch, logs):
        now = time.monotonic()
        last = now - (self._epoch_start or now)
        self._epoch_start = now
        self.stopped = now + last > self.deadline
        return self.stopped
