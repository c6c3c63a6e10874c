"""What ``fit`` shows and returns: the lesson's per-epoch rows and the per-epoch logs.

>>> print(epoch_header(["accuracy"]))
  epoch    trn_loss   val_loss   accuracy     time
>>> print(epoch_row(0, 0.5, [0.25, 0.9], 1.5))
[ 0         0.50000    0.25000    0.90000     1.5s ]
"""
from __future__ import annotations


def epoch_header(metric_names: list[str]) -> str:
    """The column names above a fit's first row."""
    names = ["epoch", "trn_loss", "val_loss", *metric_names]
    cells = [f"{names[0]:<6}"] + [f"{n:>9}" for n in names[1:]] + [f"{'time':>7}"]
    return "  " + "  ".join(cells)


def print_epoch(epoch: int, trn_loss: float, vals: list[float], seconds: float, metric_names: list[str],
                header: bool) -> None:
    """Print an epoch's row, with the header above it when ``header`` (a fit's first row)."""
    if header:
        print(epoch_header(metric_names), flush=True)
    print(epoch_row(epoch, trn_loss, vals, seconds), flush=True)


def epoch_progress(total: int, desc: str):
    """A bar per epoch: widget or text bar in Jupyter, text bar in a terminal, nothing in a log."""
    from ..utils.display import progress_bar

    return progress_bar(total, desc, unit="batch")


def epoch_row(epoch: int, trn_loss: float, vals: list[float], seconds: float) -> str:
    """The lesson's row ``[ epoch trn_loss val_loss metrics... ]`` with the epoch's time."""
    cells = [f"{epoch:<6d}", f"{trn_loss:9.5f}"] + [f"{v:9.5f}" for v in vals] + [f"{seconds:6.1f}s"]
    return "[ " + "  ".join(cells) + " ]"


class FitLogs(list):
    """The per-epoch logs ``fit`` returns: a list of dicts that a notebook cell does not echo.

    ``fit`` prints one line per epoch already; as a cell's last expression the full list of dicts
    would follow as a long ``Out[]``. IPython calls ``_ipython_display_`` instead of showing the value,
    and this one shows nothing. ``repr`` is one line. Everything else is a plain list.

    >>> logs = FitLogs([{"epoch": 0, "val_loss": 0.25, "accuracy": 0.9}])
    >>> logs
    FitLogs(1 epoch, last: epoch 0, val_loss 0.25, accuracy 0.9)
    >>> logs[0]["accuracy"]
    0.9
    """

    def _ipython_display_(self) -> None:
        pass

    def __repr__(self) -> str:
        if not self:
            return "FitLogs(no epoch)"
        last = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self[-1].items()
                         if k not in ("lr", "seconds", "trn_loss"))
        return f"FitLogs({len(self)} epoch{'s' if len(self) != 1 else ''}, last: {last})"
