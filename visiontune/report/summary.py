"""The report's answer and bookkeeping sections: the summary (accuracy, TTA accuracy, log loss, wall time,
the per-class table, the steps run and skipped), the timing table and the run configuration in words."""
from __future__ import annotations

import numpy as np

from .markup import _esc, _na, _num, _readable, _seconds_text, _table
from .predictions import _interpretation
from .records import RunRecords

MAX_CLASS_ROWS = 200  # rows of the per-class table; more classes show the weakest
_UNFROZEN_STEPS = ("unfreeze", "differential_lrs", "lr_find_unfrozen", "sgdr_unfrozen")


def _setting_rows(d: dict, prefix: str = "") -> list[list[str]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict) and v and prefix == "":  # one level of nesting becomes "recipe / key" rows
            rows.extend(_setting_rows(v, f"{k} / "))
        else:
            rows.append([f"{prefix}{str(k).replace('_', ' ')}", _readable(v)])
    return rows


def _sec_config(run: RunRecords) -> str:
    if not isinstance(run.config, dict):
        return _na("config.json is missing")
    parts = [_table(["setting", "value"], _setting_rows(run.config))]
    if isinstance(run.preprocessing, dict):
        pre = {k: v for k, v in run.preprocessing.items() if k != "classes"}
        parts.append("<h3>Preprocessing</h3>" + _table(["setting", "value"], _setting_rows(pre)))
    return "".join(parts)


def timing_table(progress: dict) -> str:
    """Every lap of ``progress.json`` (start-up, data and model, each step, TTA, export, report) in words,
    with the epochs of each fit, and their total: the whole run, start-up included."""
    from ..utils.words import in_words

    laps = {str(k): _num(v) for k, v in (progress.get("timings") or {}).items()}
    step_phase = {"head_precompute": "head_precompute", "head_aug": "head_aug", "sgdr_unfrozen": "unfrozen"}
    rows_by_phase: dict[str, int] = {}
    for r in progress.get("rows") or []:
        if isinstance(r, dict):
            rows_by_phase[str(r.get("phase"))] = rows_by_phase.get(str(r.get("phase")), 0) + 1
    skipped = {str(s.get("step")) for s in progress.get("skipped") or [] if isinstance(s, dict)}
    rows = [[in_words(k) + (" (skipped)" if k in skipped else ""), rows_by_phase.get(step_phase.get(k, ""), ""), v]
            for k, v in laps.items()]
    rows.append(["total (the whole run)", sum(rows_by_phase.values()), float(np.nansum(list(laps.values())))])
    return _table(["lap", "epochs", "seconds"], rows, num_cols={1, 2})


def _answer_box(label: str, value: str, note: str = "") -> str:
    return f"<div><span>{_esc(label)}</span><b>{_esc(value)}</b>{f'<span>{_esc(note)}</span>' if note else ''}</div>"


def _sec_summary(run: RunRecords) -> str:
    """The answer first: accuracy, TTA accuracy, log loss, wall time; per-class table; steps run and skipped."""
    final = (run.progress or {}).get("final") or {}
    got = _interpretation(run)
    have_interp = not isinstance(got, str)
    interp, has_probs = got if have_interp else (got, False)
    acc = final.get("accuracy")
    if acc is None and have_interp:
        acc = float((interp.preds == interp.targets).mean())
    tta = final.get("tta_accuracy")
    log_loss = float(interp.losses.mean()) if has_probs else final.get("val_loss")
    seconds = final.get("seconds", (run.progress or {}).get("elapsed"))
    if seconds is None and run.metrics:
        seconds = float(np.nansum([_num(r.get("seconds")) for r in run.metrics]))
    if acc is None and tta is None and log_loss is None and seconds is None:
        return _na("progress.json and val_predictions.csv are missing")
    views = final.get("tta_views")
    n_val = len(interp.targets) if have_interp else None
    boxes = [
        _answer_box("accuracy", f"{acc:.4f}" if isinstance(acc, (int, float)) else "not recorded",
                    f"{n_val} validation images" if n_val else ""),
        _answer_box("TTA accuracy", f"{tta:.4f}" if isinstance(tta, (int, float)) else "no TTA",
                    f"clean view + {views} augmented" if isinstance(tta, (int, float)) and views else ""),
        _answer_box("log loss" if run.kind == "single" else "validation loss",
                    f"{log_loss:.4f}" if isinstance(log_loss, (int, float)) else "not recorded"),
        _answer_box("wall time", _seconds_text(float(seconds)) if isinstance(seconds, (int, float)) else "not recorded"),
    ]
    parts = [f'<div class="answer">{"".join(boxes)}</div>']
    if have_interp:
        rows = interp.per_class_table()
        note = ""
        if len(rows) > MAX_CLASS_ROWS:  # thousands of classes: the weakest ones, so the page stays small
            rows = sorted(rows, key=lambda r: (r[3], -r[4], r[0]))[:MAX_CLASS_ROWS]
            note = (f'<p class="muted">The {MAX_CLASS_ROWS} classes with the lowest F1 of {len(interp.classes)} '
                    "(<code>learn.interpret().per_class_table()</code> gives them all).</p>")
        parts.append("<h3>Per class</h3>" + note + _table(["class", "precision", "recall", "F1", "images"], rows,
                                                            num_cols={1, 2, 3, 4}))
    else:
        parts.append(f'<p class="muted">Per-class table: {_esc(interp)}.</p>')
    parts.append(_steps_table(run))
    return "".join(parts)


def _steps_table(run: RunRecords) -> str:
    if not run.progress:
        return '<p class="muted">Steps: progress.json is missing.</p>'
    skipped: dict[str, str] = {}
    for entry in run.progress.get("skipped") or []:
        step, _, why = str(entry).partition(":")
        skipped[step.strip()] = why.strip()
    if "unfreeze" in skipped:  # the recipe skips the unfrozen phase as a whole and marks only its first step
        for step in _UNFROZEN_STEPS[1:]:
            skipped.setdefault(step, f"the unfrozen phase was skipped ({skipped['unfreeze']})")
    timings = run.progress.get("timings") or {}
    rows, seen = [], set()
    for step in list(run.progress.get("completed") or []) + list(skipped):
        if step in seen:
            continue
        seen.add(step)
        t = timings.get(step)
        if step in skipped:
            rows.append((step, "skipped", skipped[step] or "no reason recorded", ""))
        else:
            rows.append((step, "ran", "", _seconds_text(float(t)) if isinstance(t, (int, float)) else ""))
    status = str(run.progress.get("status", "unknown"))
    out = [f"<h3>Steps</h3><p class=\"muted\">{len([r for r in rows if r[1] == 'ran'])} ran, "
           f"{len(skipped)} skipped; the run is {_esc(status)}.</p>",
           "<table><thead><tr><th>step</th><th>status</th><th>why skipped</th><th>time</th></tr></thead><tbody>"]
    for step, state, why, t in rows:
        cls = ' class="skipped"' if state == "skipped" else ""
        out.append(f"<tr><td>{_esc(step.replace('_', ' '))}</td><td{cls}>{state}</td><td>{_esc(why)}</td>"
                   f'<td class="num">{_esc(t)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _sec_timing(run: RunRecords) -> str:
    if isinstance(run.progress, dict) and isinstance(run.progress.get("timings"), dict) and run.progress["timings"]:
        return timing_table(run.progress)
    if not run.metrics or not any("seconds" in r for r in run.metrics):
        return _na("metrics with per-epoch seconds are missing")
    per_phase: dict[str, list[float]] = {}
    for r in run.metrics:
        per_phase.setdefault(str(r.get("phase", "")), []).append(_num(r.get("seconds")))
    rows = [[p, len(v), float(np.nansum(v))] for p, v in per_phase.items()]
    total = float(np.nansum([s for v in per_phase.values() for s in v]))
    rows.append(["total", sum(len(v) for v in per_phase.values()), total])
    return _table(["phase", "epochs", "seconds"], rows, num_cols={1, 2})
