"""The report's data and training sections: class counts, image sizes, augmentation previews, the
learning-rate finder, the learning-rate schedule and the training history."""
from __future__ import annotations

import numpy as np

from . import embed, figures
from .markup import _esc, _na, _num, _table
from .records import RunRecords

_NOT_METRICS = {"phase", "epoch", "lr", "trn_loss", "val_loss", "seconds", "time", "iters"}


def _sec_class_counts(run: RunRecords) -> str:
    counts = run.data_summary.get("class_counts") if isinstance(run.data_summary, dict) else None
    if not isinstance(counts, dict) or not counts:
        return _na("data_summary.json with class_counts is missing")
    counts = {str(k): int(v) for k, v in counts.items()}
    return embed._fig_img(figures.fig_class_counts(counts), "images per class")


def _sec_sizes(run: RunRecords) -> str:
    sizes = run.data_summary.get("sizes") if isinstance(run.data_summary, dict) else None
    if not isinstance(sizes, list) or not sizes:
        return _na("data_summary.json with image sizes is missing")
    return embed._fig_img(figures.fig_size_histograms(sizes), "histograms of image widths, heights and aspect ratios")


def _sec_aug_previews(run: RunRecords) -> str:
    if run.aug_previews is None:
        return _na(run.aug_previews_note)
    return embed._img_tag(run.aug_previews, "augmentation previews")


def _sec_lr_find(run: RunRecords) -> str:
    entries = run.lr_find
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        return _na("lr_find.json is missing")
    parts = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("lrs") or not e.get("losses"):
            continue
        phase = e.get("phase", f"sweep {i + 1}")
        chosen = e.get("chosen_lr")
        fig = figures.fig_lr_find(e["lrs"], e["losses"], chosen_lr=chosen, rule=e.get("rule"), title=f"lr_find: {phase}")
        caption = f"chosen rate {chosen:.3g}" if isinstance(chosen, (int, float)) else "no rate chosen"
        if e.get("rule"):
            caption += f" by the rule: {e['rule']}"
        parts.append(f"<figure>{embed._fig_img(fig, f'lr_find loss against learning rate, {phase}')}"
                     f"<figcaption class=\"muted\">{_esc(phase)}: {_esc(caption)}</figcaption></figure>")
    return "".join(parts) or _na("lr_find.json holds no sweep")


def _sec_schedule(run: RunRecords) -> str:
    if not isinstance(run.schedule, dict) or not any(run.schedule.values()):
        return _na("schedule.json is missing")
    total = sum(len(v) for v in run.schedule.values() if isinstance(v, list))
    fig = figures.fig_lr_schedule({k: v for k, v in run.schedule.items() if isinstance(v, list)})
    return embed._fig_img(fig, "learning rate per iteration") + f'<p class="muted">{total} iterations in {len(run.schedule)} phases.</p>'


def _sec_history(run: RunRecords) -> str:
    if not run.metrics:
        return _na("metrics.csv / metrics.json are missing")
    keys = list(run.metrics[0].keys())
    metric_keys = [k for k in keys if k not in _NOT_METRICS and not np.isnan(_num(run.metrics[0].get(k)))]
    loss_keys = [k for k in ("trn_loss", "val_loss") if k in keys]
    fig = figures.fig_metrics(run.metrics, loss_keys=loss_keys, metric_keys=metric_keys)
    rows = []
    for r in run.metrics:
        rows.append([r.get(k, "") if k == "phase" or np.isnan(_num(r.get(k))) else _num(r.get(k)) for k in keys])
    num_cols = {i for i, k in enumerate(keys) if k != "phase"}
    return embed._fig_img(fig, "loss and metrics per epoch") + _table(keys, rows, num_cols=num_cols)
