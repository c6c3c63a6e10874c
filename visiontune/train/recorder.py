"""``learn.sched``: what the last ``fit`` or ``lr_find`` did, with the lesson's plots.

``plot()`` draws loss against learning rate (the lr finder's view) and marks the suggested
rate; ``plot_lr()`` draws the rate per iteration; ``plot_loss()`` the losses. Each returns a
matplotlib Figure and saves it to PNG when given ``path``.
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
    def plot(self, n_skip: int = 1, n_skip_end: int = 1, path=None):
        """Loss against learning rate (log scale), with the suggested rate marked."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        end = len(self.lrs) - n_skip_end if n_skip_end else len(self.lrs)
        lrs, losses = np.array(self.lrs[n_skip:end]), smooth(self.losses)[n_skip:end]
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
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot(range(len(self.lrs)), self.lrs)
        ax.set_xlabel("iterations")
        ax.set_ylabel("learning rate")
        return _save(fig, path)

    def plot_loss(self, path=None):
        """Training loss per iteration."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot(range(len(self.losses)), self.losses, alpha=0.4, label="loss")
        ax.plot(range(len(self.losses)), smooth(self.losses), label="smoothed")
        ax.set_xlabel("iterations")
        ax.set_ylabel("loss")
        ax.legend()
        return _save(fig, path)


def _save(fig, path):
    if path is not None:
        from ..utils.atomic import atomic_write

        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=90, bbox_inches="tight")
    return fig
