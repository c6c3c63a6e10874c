"""``learn.sched``: what the last ``fit`` or ``lr_find`` did, with the lesson's plots.

``plot()`` draws loss against learning rate (the lr finder's view) and marks the suggested
rate; ``plot_lr()`` draws the rate per iteration; ``plot_loss()`` the losses. Each returns a
matplotlib Figure that displays itself inline in Jupyter (:class:`visiontune.utils.display.DisplayFigure`:
no ``%matplotlib inline`` needed) and saves it to PNG when given ``path``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .schedules import smooth, suggest_lr


@dataclass
class Recorder:
    kind: str = "fit"  # "fit" or "lr_find"
    lrs: list[float] = field(default_factory=list)  # head group's rate at each iteration
    losses: list[float] = field(default_factory=list)
    epoch_ends: list[int] = field(default_factory=list)  # iteration index where each epoch ended
    suggestion: float | None = None
    rule: str = ""

    def record(self, lr: float, loss: float) -> None:
        self.lrs.append(float(lr))
        self.losses.append(float(loss))

    def suggest(self) -> float:
        self.suggestion, self.rule = suggest_lr(self.lrs, self.losses)
        return self.suggestion

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lrs": self.lrs, "losses": self.losses, "epoch_ends": self.epoch_ends,
                "chosen_lr": self.suggestion, "rule": self.rule}

    # --- plots -----------------------------------------------------------------------------
    def plot(self, n_skip: int = 10, n_skip_end: int = 5, path=None):
        """Loss against learning rate (log scale), with the suggested rate marked.

        Leaves out the first ``n_skip`` and last ``n_skip_end`` iterations, as fastai 0.7 does; a
        sweep too short for that keeps at least 2 points, trimming both ends in proportion.
        """
        from ..utils.display import new_figure

        fig = new_figure(6, 4)
        ax = fig.add_subplot()
        start, end = plot_window(len(self.lrs), n_skip, n_skip_end)
        lrs, losses = np.array(self.lrs[start:end]), smooth(self.losses)[start:end]
        ax.plot(lrs, losses)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("loss (smoothed)")
        if self.kind == "lr_find" and self.lrs:
            lr = self.suggestion if self.suggestion is not None else self.suggest()
            ax.axvline(lr, color="red", linestyle="--", label=f"suggested {lr:.2g} ({self.rule.split(':')[0]})")
            ax.legend()
        return _save(fig, path)

    def plot_lr(self, path=None):
        """Learning rate per iteration (SGDR restarts show as saw teeth)."""
        from ..utils.display import new_figure

        fig = new_figure(6, 4)
        ax = fig.add_subplot()
        ax.plot(range(len(self.lrs)), self.lrs)
        ax.set_xlabel("iterations")
        ax.set_ylabel("learning rate")
        return _save(fig, path)

    def plot_loss(self, path=None):
        """Training loss per iteration."""
        from ..utils.display import new_figure

        fig = new_figure(6, 4)
        ax = fig.add_subplot()
        ax.plot(range(len(self.losses)), self.losses, alpha=0.4, label="loss")
        ax.plot(range(len(self.losses)), smooth(self.losses), label="smoothed")
        ax.set_xlabel("iterations")
        ax.set_ylabel("loss")
        ax.legend()
        return _save(fig, path)


def plot_window(n: int, n_skip: int, n_skip_end: int) -> tuple[int, int]:
    """``(start, end)`` of the points ``plot()`` draws: ``n_skip`` and ``n_skip_end`` trimmed, at least 2 kept.

    >>> plot_window(100, 10, 5), plot_window(9, 10, 5), plot_window(3, 10, 5), plot_window(1, 10, 5)
    ((10, 95), (5, 7), (1, 3), (0, 1))
    """
    keep = min(n, 2)
    if n - n_skip - n_skip_end < keep:
        trim = n - keep
        n_skip = round(trim * n_skip / max(n_skip + n_skip_end, 1))
        n_skip_end = trim - n_skip
    return n_skip, n - n_skip_end


def _save(fig, path):
    if path is not None:
        from ..utils.atomic import atomic_write

        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=90, bbox_inches="tight")
    return fig
