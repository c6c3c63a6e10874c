"""The report's sections on the validation predictions: confusion matrix, most-confused pairs and top
losses, from :class:`~visiontune.report.interpret.ClassificationInterpretation` (the same code as
``learn.interpret()``)."""
from __future__ import annotations

import numpy as np

from . import embed
from .interpret import ClassificationInterpretation
from .markup import _esc, _na, _num, _table
from .records import RunRecords

N_TOP_LOSSES = 16
N_MOST_CONFUSED = 20


def _class_index(value: str, classes: list[str]) -> int | None:
    if value in classes:
        return classes.index(value)
    try:
        i = int(float(value))
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < len(classes) else None


def _single_label_predictions(run: RunRecords):
    """(rows, classes, target idx, pred idx, probs) for a single-label run, or a reason it's not available."""
    if run.kind != "single":
        return f"the confusion analysis applies to single-label runs (this run is {run.kind!r})"
    rows = run.val_predictions
    if not rows:
        return "val_predictions.csv is missing"
    classes = run.classes or [k[2:] for k in rows[0] if k.startswith("p_")]
    if not classes:
        return "classes.json is missing"
    t = [_class_index(r.get("target", ""), classes) for r in rows]
    p = [_class_index(r.get("pred", ""), classes) for r in rows]
    keep = [i for i in range(len(rows)) if t[i] is not None and p[i] is not None]
    if not keep:
        return "val_predictions.csv has no rows with known classes"
    prob_cols = [f"p_{c}" for c in classes]
    probs = None
    if all(c in rows[0] for c in prob_cols):
        probs = np.array([[_num(rows[i][c]) for c in prob_cols] for i in keep], dtype=float)
    return [rows[i] for i in keep], classes, np.array([t[i] for i in keep]), np.array([p[i] for i in keep]), probs


def _interpretation(run: RunRecords):
    """The validation predictions as a ``ClassificationInterpretation``, or a reason it is not available.
    Without ``p_<class>`` columns the predicted class gets probability 1 (counts stay exact)."""
    got = _single_label_predictions(run)
    if isinstance(got, str):
        return got
    rows, classes, t, p, probs = got
    has_probs = probs is not None and np.isfinite(probs).all()
    if not has_probs:
        probs = np.eye(len(classes))[p]
    return ClassificationInterpretation(probs, t, classes, items=[r.get("fname", "") for r in rows]), has_probs


def _sec_confusion(run: RunRecords) -> str:
    got = _interpretation(run)
    if isinstance(got, str):
        return _na(got)
    interp = got[0]
    n = len(interp.targets)
    acc = float(np.mean(interp.targets == interp.preds)) if n else 0.0
    fig = interp.plot_confusion_matrix(title=f"Confusion matrix, {n} validation images")  # most-confused classes
    return embed._fig_img(fig, "confusion matrix") + f'<p class="muted">Accuracy {acc:.4f} on {n} validation images.</p>'


def _sec_most_confused(run: RunRecords) -> str:
    got = _interpretation(run)
    if isinstance(got, str):
        return _na(got)
    pairs = got[0].most_confused()
    if not pairs:
        return '<p class="muted">No validation image was misclassified.</p>'
    return _table(["actual", "predicted", "count"], [list(x) for x in pairs[:N_MOST_CONFUSED]], num_cols={2})


def _top_losses(run: RunRecords):
    """(rows, classes, target idx, pred idx, probs, p(actual), losses, the top losses' row indices) or a
    reason they are not available."""
    got = _single_label_predictions(run)
    if isinstance(got, str):
        return got
    rows, classes, t, p, probs = got
    if probs is None:
        return "val_predictions.csv has no p_<class> probability columns"
    p_true = probs[np.arange(len(t)), t]
    losses = -np.log(np.clip(p_true, 1e-12, 1.0))
    order = np.argsort(-losses, kind="stable")[:N_TOP_LOSSES]
    return rows, classes, t, p, probs, p_true, losses, order


def thumbnails_wanted(run: RunRecords) -> list[str]:
    """The ``fname`` of each image the top losses show (``run.thumbnails`` are wanted for these)."""
    got = _top_losses(run)
    if isinstance(got, str):
        return []
    rows, order = got[0], got[-1]
    return [rows[i].get("fname", "") for i in order]


def _sec_top_losses(run: RunRecords) -> str:
    got = _top_losses(run)
    if isinstance(got, str):
        return _na(got)
    rows, classes, t, p, probs, p_true, losses, order = got
    data_dir = run.data_dir
    cells, table_rows, missing = [], [], 0
    for i in order:
        fname = rows[i].get("fname", "")
        actual, pred = classes[t[i]], classes[p[i]]
        p_pred = probs[i, p[i]]
        table_rows.append([fname, actual, pred, float(p_pred), float(p_true[i]), float(losses[i])])
        png = run.thumbnails.get(fname)
        if png is None:
            missing += 1
            continue
        cls = ' class="wrong"' if t[i] != p[i] else ""
        cells.append(
            f"<figure>{embed._img_tag(png, f'{fname}: actual {actual}, predicted {pred}')}"
            f"<figcaption{cls}>actual <b>{_esc(actual)}</b><br>predicted <b>{_esc(pred)}</b> ({p_pred:.2f})"
            f"<br>p(actual) {p_true[i]:.2f} · loss {losses[i]:.2f}</figcaption></figure>"
        )
    parts = []
    if cells:
        parts.append(f'<div class="grid">{"".join(cells)}</div>')
    if missing:
        parts.append(f'<p class="na">{missing} of {len(order)} images not found'
                     f'{" under " + _esc(data_dir) if data_dir else " (no data path in config.json)"}; '
                     f"thumbnails skipped.</p>")
    parts.append(_table(["file", "actual", "predicted", "p(predicted)", "p(actual)", "loss"], table_rows,
                        num_cols={3, 4, 5}))
    return "".join(parts)
