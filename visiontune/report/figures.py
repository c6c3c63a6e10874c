"""Plots for the run report: pure functions that take data and return a matplotlib ``Figure``.

Figures come from :func:`visiontune.utils.display.new_figure` (an Agg canvas, constrained layout, and
``_repr_png_`` so they display inline in Jupyter), so nothing here touches pyplot's global state or the
user's backend. :func:`fig_to_png_bytes` renders one to PNG. Text that comes from data (class names,
rules, phase names) is drawn as plain text and wrapped to the figure's width, so nothing is cut off.

>>> fig = fig_class_counts({"ants": 10, "bees": 12})
>>> fig_to_png_bytes(fig)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..utils.display import DPI, new_figure, plain_text, png_bytes

__all__ = ["DPI", "fig_class_counts", "fig_confusion_matrix", "fig_lr_find", "fig_lr_schedule", "fig_metrics",
           "fig_size_histograms", "fig_to_png_bytes"]


def _figure(w: float = 6.0, h: float = 3.2) -> Figure:
    return new_figure(w, h)


def fig_to_png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes (the figure's own dpi unless ``dpi`` is given)."""
    return png_bytes(fig, dpi)


def fig_class_counts(counts: Mapping[str, int], title: str = "Images per class") -> Figure:
    """Horizontal bar chart of images per class (largest first; at most 60 bars shown)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:60]
    n = max(len(items), 1)
    fig = _figure(6.0, min(1.2 + 0.22 * n, 14.0))
    ax = fig.add_subplot()
    names = [str(k) for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    ax.barh(range(len(values)), values, color="#4c72b0")
    ax.set_yticks(range(len(values)), [plain_text(n) for n in names], fontsize=8 if n <= 30 else 6)
    ax.set_xlabel("images")
    shown = f" (largest {len(items)} of {len(counts)})" if len(items) < len(counts) else ""
    ax.set_title(plain_text(title + shown))
    return fig


def fig_size_histograms(sizes: Sequence[Sequence[int]], bins: int = 30) -> Figure:
    """Histograms of image widths, heights and aspect ratios (width / height)."""
    a = np.asarray(sizes, dtype=float).reshape(-1, 2)
    fig = _figure(8.0, 2.6)
    axes = fig.subplots(1, 3)
    for ax, values, label in (
        (axes[0], a[:, 0], "width (px)"),
        (axes[1], a[:, 1], "height (px)"),
        (axes[2], a[:, 0] / np.maximum(a[:, 1], 1), "aspect ratio (w / h)"),
    ):
        ax.hist(values, bins=bins, color="#55a868")
        ax.set_xlabel(label)
    axes[0].set_ylabel("images")
    fig.suptitle(f"Image sizes ({len(a)} images)")
    return fig


def fig_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    chosen_lr: float | None = None,
    rule: str | None = None,
    title: str = "lr_find",
) -> Figure:
    """Loss against learning rate (log x axis) with the chosen rate marked and the rule named."""
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot()
    ax.plot(lrs, losses, color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    finite = np.asarray([v for v in losses if v is not None and np.isfinite(v)], dtype=float)
    if finite.size:  # keep a diverging tail from flattening the interesting part
        lo, hi = finite.min(), np.percentile(finite, 95)
        if hi > lo:
            pad = 0.1 * (hi - lo)
            ax.set_ylim(lo - pad, hi + 3 * pad)
    if chosen_lr:
        ax.axvline(chosen_lr, color="#c44e52", linestyle="--", label=f"chosen {chosen_lr:.2e}")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(plain_text(title), fontsize=10)
    if rule:  # wrapped to the figure's width: a long rule was cut off at the edge
        ax.set_title(plain_text(textwrap.fill(f"rule: {rule}", max(20, int(fig.get_figwidth() * 13)))), fontsize=8,
                     color="#444444")
    return fig


def fig_lr_schedule(schedule: Mapping[str, Sequence]) -> Figure:
    """Learning rate per iteration over all phases, one after the other, phase boundaries marked.

    Each phase maps to a list of rates, or of per-layer-group lists of rates (one line per group).
    """
    fig = _figure(7.0, 3.0)
    ax = fig.add_subplot()
    start = 0
    mids, names = [], []
    labelled: set[int] = set()
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    for phase, lrs in schedule.items():
        a = np.asarray(lrs, dtype=float)
        if a.size == 0:
            continue
        a = a.reshape(len(a), -1)
        x = np.arange(start, start + len(a))
        for g in range(a.shape[1]):
            label = None
            if a.shape[1] > 1 and g not in labelled:
                label = f"layer group {g}"
                labelled.add(g)
            ax.plot(x, a[:, g], color=colors[g % len(colors)], linewidth=1.2, label=label)
        if start:
            ax.axvline(start, color="#999999", linewidth=0.8, linestyle=":")
        mids.append(start + (len(a) - 1) / 2)
        names.append(plain_text(phase))
        start += len(a)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    if names:  # phase names above the plot, centred on their phase: never over the curves
        top = ax.secondary_xaxis("top")
        top.set_xticks(mids, names, fontsize=7)
        top.tick_params(length=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Learning-rate schedule", fontsize=10)
    return fig


def fig_metrics(rows: Sequence[Mapping], loss_keys=("trn_loss", "val_loss"), metric_keys: Sequence[str] = ()) -> Figure:
    """Losses (left) and metrics (right) per epoch, numbered across phases; phase changes marked."""
    fig = _figure(8.0, 3.0)
    ax_loss, ax_m = fig.subplots(1, 2)
    x = np.arange(1, len(rows) + 1)

    def col(key):
        return np.asarray([_num(r.get(key)) for r in rows], dtype=float)

    for key in loss_keys:
        ax_loss.plot(x, col(key), marker="o", markersize=3, label=plain_text(key))
    for key in metric_keys:
        ax_m.plot(x, col(key), marker="o", markersize=3, label=plain_text(key))
    phases = [str(r.get("phase", "")) for r in rows]
    for ax in (ax_loss, ax_m):
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xlabel("epoch (all phases)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax_loss.set_title("Loss")
    ax_m.set_title("Metrics" if metric_keys else "Metrics (none recorded)")
    return fig


def fig_confusion_matrix(cm: np.ndarray, classes: Sequence[str]) -> Figure:
    """Confusion matrix with class names (rows: actual, columns: predicted): the interpretation API's plot
    (:func:`visiontune.report.interpret.plot_confusion_matrix`), so the report and a notebook draw the same."""
    from .interpret import plot_confusion_matrix

    return plot_confusion_matrix(cm, classes, title=f"Confusion matrix, {int(np.asarray(cm).sum())} validation images")


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
