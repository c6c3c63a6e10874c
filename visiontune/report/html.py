"""The self-contained HTML run report.

:func:`write_report` reads whatever exists in a run folder (see ``docs/design.md``) and writes one
``report.html``: every image is an embedded base64 PNG, there are no external URLs and no scripts.
A section whose inputs are missing (a partial or interrupted run) shows a short "not available" note.

The report leads with the answer. Sections, in order (:data:`SECTIONS`): the summary (accuracy, TTA
accuracy, log loss, wall time, the per-class precision / recall / F1 table, and which steps ran or were
skipped and why), timing, class counts, image sizes, augmentation previews, learning-rate finder,
learning-rate schedule, training history, confusion matrix, most-confused pairs, top losses, and last
the run configuration in words (``yes`` / ``no`` / ``not set``, not Python's ``True`` / ``None``).

The confusion matrix, the most-confused pairs, the top losses and the per-class table come from
:class:`visiontune.report.interpret.ClassificationInterpretation`, the same code as ``learn.interpret()``.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from visiontune.utils.atomic import atomic_write_text
from visiontune.utils.kinds import KINDS
from visiontune.utils.text import from_spreadsheet_safe

from . import figures
from .interpret import ClassificationInterpretation

log = logging.getLogger(__name__)

SECTIONS = (
    "Summary",
    "Timing",
    "Class counts",
    "Image sizes",
    "Augmentation previews",
    "Learning-rate finder",
    "Learning-rate schedule",
    "Training history",
    "Confusion matrix",
    "Most confused",
    "Top losses",
    "Run configuration",
)
N_TOP_LOSSES = 16
MAX_CLASS_ROWS = 200  # rows of the per-class table; more classes show the weakest
N_MOST_CONFUSED = 20
THUMB_PX = 160
MAX_EMBED_BYTES = 500_000  # a larger aug_previews.png is re-encoded smaller (the page stays under ~2 MB)
_NOT_METRICS = {"phase", "epoch", "lr", "trn_loss", "val_loss", "seconds", "time", "iters"}
_DATA_KEYS = ("data", "data_path", "data_dir", "path")
_UNFROZEN_STEPS = ("unfreeze", "differential_lrs", "lr_find_unfrozen", "sgdr_unfrozen")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
  padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.85em;margin:0}
.na{color:#777;font-style:italic} .muted{color:#777;font-size:.9em}
img{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:.8em}
.grid figure{margin:0;width:170px;font-size:.8em}
.grid figcaption{margin-top:.2em} .wrong{color:#b00}
nav a{margin-right:.8em;font-size:.9em}
.answer{display:flex;flex-wrap:wrap;gap:1em;margin:.6em 0 1em}
.answer div{border:1px solid #ddd;border-radius:6px;padding:.4em .9em;min-width:9em}
.answer b{display:block;font-size:1.6em;font-variant-numeric:tabular-nums}
.answer span{color:#555;font-size:.85em}
td.skipped{color:#a60}
"""


# -- small helpers ----------------------------------------------------------------------------------------------
def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _na(what: str) -> str:
    return f'<p class="na">Not available: {_esc(what)}.</p>'


def _img_tag(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{_esc(alt)}">'


def _fig_img(fig, alt: str) -> str:
    return _img_tag(figures.fig_to_png_bytes(fig), alt)


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("report: cannot read %s: %s", path, e)
        return None


def _read_csv(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:  # our CSVs are spreadsheet-safe: undo it
            return [{(from_spreadsheet_safe(k) if isinstance(k, str) else k): (from_spreadsheet_safe(v) if isinstance(v, str) else v)
                     for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        log.warning("report: cannot read %s: %s", path, e)
        return None


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _table(header: list[str], rows: list[list], num_cols: set[int] = frozenset()) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, v in enumerate(row):
            cls = ' class="num"' if i in num_cols else ""
            out.append(f"<td{cls}>{_esc(_fmt(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- the run folder, read once ------------------------------------------------------------------------------------
class _Run:
    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.config = _read_json(run_dir / "config.json")
        self.preprocessing = _read_json(run_dir / "preprocessing.json")
        classes = _read_json(run_dir / "classes.json")
        if classes is None and isinstance(self.preprocessing, dict):
            classes = self.preprocessing.get("classes")
        self.classes = [str(c) for c in classes] if isinstance(classes, list) else None
        self.kind = self._kind()
        self.metrics = self._metrics()
        self.lr_find = _read_json(run_dir / "lr_find.json")
        self.progress = _read_json(run_dir / "progress.json")
        self.schedule = _read_json(run_dir / "schedule.json")
        self.data_summary = _read_json(run_dir / "data_summary.json")
        self.val_predictions = _read_csv(run_dir / "val_predictions.csv")
        progress = _read_json(run_dir / "progress.json")
        self.progress = progress if isinstance(progress, dict) else None

    def _kind(self) -> str:
        for src in (self.preprocessing, self.config):
            if isinstance(src, dict) and src.get("kind") in KINDS:
                return src["kind"]
        return "single"

    def _metrics(self) -> list[dict] | None:
        rows = _read_csv(self.dir / "metrics.csv")
        if rows is None:
            data = _read_json(self.dir / "metrics.json")
            if isinstance(data, dict):
                data = data.get("rows") or data.get("epochs")
            rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else None
        return rows or None

    def data_dir(self) -> Path | None:
        if not isinstance(self.config, dict):
            return None
        for key in _DATA_KEYS:
            v = self.config.get(key)
            if isinstance(v, str) and v:
                p = Path(v).expanduser()
                if p.is_absolute():
                    return p
                for base in (Path.cwd(), self.dir):  # relative to where train ran, or to the run folder
                    if (base / p).is_dir():
                        return base / p
                return p
        return None


# -- sections -------------------------------------------------------------------------------------------------------
def _readable(v) -> str:
    """A configuration value in words: ``yes`` / ``no`` / ``not set``, lists joined, numbers short."""
    if v is None or v == "":
        return "not set"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_readable(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_readable(x)}" for k, x in v.items()) if v else "none"
    return str(v)


def _setting_rows(d: dict, prefix: str = "") -> list[list[str]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict) and v and prefix == "":  # one level of nesting becomes "recipe / key" rows
            rows.extend(_setting_rows(v, f"{k} / "))
        else:
            rows.append([f"{prefix}{str(k).replace('_', ' ')}", _readable(v)])
    return rows


def _sec_config(run: _Run) -> str:
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


def _seconds_text(sec: float) -> str:
    """``75.3`` -> ``1 min 15 s``; under a minute one decimal."""
    if not math.isfinite(sec):
        return "not recorded"
    if sec < 60:
        return f"{sec:.1f} s"
    m, s_ = divmod(int(round(sec)), 60)
    if m < 60:
        return f"{m} min {s_} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def _answer_box(label: str, value: str, note: str = "") -> str:
    return f"<div><span>{_esc(label)}</span><b>{_esc(value)}</b>{f'<span>{_esc(note)}</span>' if note else ''}</div>"


def _sec_summary(run: _Run) -> str:
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


def _steps_table(run: _Run) -> str:
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


def _sec_timing(run: _Run) -> str:
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


def _sec_class_counts(run: _Run) -> str:
    counts = run.data_summary.get("class_counts") if isinstance(run.data_summary, dict) else None
    if not isinstance(counts, dict) or not counts:
        return _na("data_summary.json with class_counts is missing")
    counts = {str(k): int(v) for k, v in counts.items()}
    return _fig_img(figures.fig_class_counts(counts), "images per class")


def _sec_sizes(run: _Run) -> str:
    sizes = run.data_summary.get("sizes") if isinstance(run.data_summary, dict) else None
    if not isinstance(sizes, list) or not sizes:
        return _na("data_summary.json with image sizes is missing")
    return _fig_img(figures.fig_size_histograms(sizes), "histograms of image widths, heights and aspect ratios")


def _sec_aug_previews(run: _Run) -> str:
    path = run.dir / "aug_previews.png"
    if not path.is_file():
        return _na("aug_previews.png is missing")
    from ..imaging.decode import decode_bytes
    from ..imaging.limits import ImageLoadError, read_bytes

    try:  # a regular file, a raster format (an EPS under this name never reaches Ghostscript), within the caps
        data = read_bytes(path)
        im = decode_bytes(data, str(path))
    except ImageLoadError as e:
        return _na(f"aug_previews.png cannot be shown: {e.reason}")
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) > MAX_EMBED_BYTES:
        data = _shrink_png(im, MAX_EMBED_BYTES)
    return _img_tag(data, "augmentation previews")


def _shrink_png(im, max_bytes: int, max_side: int = 1200) -> bytes:
    """PNG bytes of ``im`` under ``max_bytes``: first full colour, then a 256-colour palette, then smaller."""
    from PIL import Image

    side = max_side
    while True:
        small = im.copy()
        small.thumbnail((side, side))
        for img in (small, small.quantize(256, method=Image.Quantize.MEDIANCUT)):
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            if buf.tell() <= max_bytes or side <= 64:
                return buf.getvalue()
        side = int(side * 0.75)


def _sec_lr_find(run: _Run) -> str:
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
        parts.append(f"<figure>{_fig_img(fig, f'lr_find loss against learning rate, {phase}')}"
                     f"<figcaption class=\"muted\">{_esc(phase)}: {_esc(caption)}</figcaption></figure>")
    return "".join(parts) or _na("lr_find.json holds no sweep")


def _sec_schedule(run: _Run) -> str:
    if not isinstance(run.schedule, dict) or not any(run.schedule.values()):
        return _na("schedule.json is missing")
    total = sum(len(v) for v in run.schedule.values() if isinstance(v, list))
    fig = figures.fig_lr_schedule({k: v for k, v in run.schedule.items() if isinstance(v, list)})
    return _fig_img(fig, "learning rate per iteration") + f'<p class="muted">{total} iterations in {len(run.schedule)} phases.</p>'


def _sec_history(run: _Run) -> str:
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
    return _fig_img(fig, "loss and metrics per epoch") + _table(keys, rows, num_cols=num_cols)


def _class_index(value: str, classes: list[str]) -> int | None:
    if value in classes:
        return classes.index(value)
    try:
        i = int(float(value))
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < len(classes) else None


def _single_label_predictions(run: _Run):
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


def _interpretation(run: _Run):
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


def _sec_confusion(run: _Run) -> str:
    got = _interpretation(run)
    if isinstance(got, str):
        return _na(got)
    interp = got[0]
    n = len(interp.targets)
    acc = float(np.mean(interp.targets == interp.preds)) if n else 0.0
    fig = interp.plot_confusion_matrix(title=f"Confusion matrix, {n} validation images")  # most-confused classes
    return _fig_img(fig, "confusion matrix") + f'<p class="muted">Accuracy {acc:.4f} on {n} validation images.</p>'


def _sec_most_confused(run: _Run) -> str:
    got = _interpretation(run)
    if isinstance(got, str):
        return _na(got)
    pairs = got[0].most_confused()
    if not pairs:
        return '<p class="muted">No validation image was misclassified.</p>'
    return _table(["actual", "predicted", "count"], [list(x) for x in pairs[:N_MOST_CONFUSED]], num_cols={2})


def _thumbnail(path: Path) -> bytes | None:
    from ..imaging.decode import open_image
    from ..imaging.limits import ImageLoadError

    try:  # the one decode path: regular files, raster formats only, caps (draft: a thumbnail needs few pixels)
        im = open_image(path, draft=THUMB_PX * 2)
    except ImageLoadError as e:
        log.warning("report: cannot read thumbnail %s: %s", path, e.reason)
        return None
    im.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _inside_data(data_dir: Path | None, fname: str) -> Path | None:
    """``data_dir / fname`` when ``fname`` is a relative path that stays inside the data folder (links
    followed); ``None`` otherwise: val_predictions.csv cannot make the report embed any other file."""
    import os

    if not fname or data_dir is None or "\0" in fname:
        return None
    rel = Path(fname.replace("\\", "/"))
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        return None
    base = os.path.realpath(data_dir)
    real = os.path.realpath(data_dir / rel)
    return Path(real) if real.startswith(base.rstrip(os.sep) + os.sep) else None


def _sec_top_losses(run: _Run) -> str:
    got = _single_label_predictions(run)
    if isinstance(got, str):
        return _na(got)
    rows, classes, t, p, probs = got
    if probs is None:
        return _na("val_predictions.csv has no p_<class> probability columns")
    p_true = probs[np.arange(len(t)), t]
    losses = -np.log(np.clip(p_true, 1e-12, 1.0))
    order = np.argsort(-losses, kind="stable")[:N_TOP_LOSSES]
    data_dir = run.data_dir()
    cells, table_rows, missing = [], [], 0
    for i in order:
        fname = rows[i].get("fname", "")
        actual, pred = classes[t[i]], classes[p[i]]
        p_pred = probs[i, p[i]]
        table_rows.append([fname, actual, pred, float(p_pred), float(p_true[i]), float(losses[i])])
        path = _inside_data(data_dir, fname)
        png = _thumbnail(path) if path is not None else None
        if png is None:
            missing += 1
            continue
        cls = ' class="wrong"' if t[i] != p[i] else ""
        cells.append(
            f"<figure>{_img_tag(png, f'{fname}: actual {actual}, predicted {pred}')}"
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


_BUILDERS: dict[str, Callable[[_Run], str]] = {
    "Summary": _sec_summary,
    "Timing": _sec_timing,
    "Class counts": _sec_class_counts,
    "Image sizes": _sec_sizes,
    "Augmentation previews": _sec_aug_previews,
    "Learning-rate finder": _sec_lr_find,
    "Learning-rate schedule": _sec_schedule,
    "Training history": _sec_history,
    "Confusion matrix": _sec_confusion,
    "Most confused": _sec_most_confused,
    "Top losses": _sec_top_losses,
    "Run configuration": _sec_config,
}


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def render_report(run_dir) -> str:
    """The report's HTML text for a run folder (what :func:`write_report` writes)."""
    run_dir = Path(run_dir)
    run = _Run(run_dir)
    body = []
    for title in SECTIONS:
        try:
            content = _BUILDERS[title](run)
        except Exception as e:  # a damaged input never takes the whole report down
            # the traceback only where debugging was asked for (with no handler set up, Python's last-resort
            # handler would print it to every user)
            log.warning("report: section %r failed: %s", title, e, exc_info=log.isEnabledFor(logging.DEBUG))
            content = _na(f"could not build this section ({type(e).__name__}: {e})")
        body.append(f'<section id="{_anchor(title)}"><h2>{_esc(title)}</h2>{content}</section>')
    name = run_dir.resolve().name
    arch = run.config.get("arch") if isinstance(run.config, dict) else None
    n_cls = f"{len(run.classes)} classes" if run.classes else "classes unknown"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{_anchor(t)}">{_esc(t)}</a>' for t in SECTIONS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"{_OUR_TITLE}{_esc(name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>visiontune run report: {_esc(name)}</h1>\n"
        f'<p class="muted">{_esc(arch or "architecture unknown")} · {_esc(run.kind)}-label · {_esc(n_cls)} · '
        f"generated {_esc(now)}</p>\n<nav>{nav}</nav>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


_OUR_TITLE = "<title>visiontune report: "


def _is_our_report(path: Path) -> bool:
    """Whether ``path`` is a regular file that :func:`render_report` wrote (its head names visiontune)."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and _OUR_TITLE in head


def write_report(run_dir, out=None) -> Path:
    """Write the self-contained report for ``run_dir`` to ``out`` (default ``run_dir/report.html``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    out = Path(out) if out is not None else run_dir / "report.html"
    if (out.exists() or out.is_symlink()) and not _is_our_report(out):
        raise FileExistsError(f"{out} exists and is not a report visiontune wrote; it was left as it is: "
                              "move it away, or give --out another file")
    atomic_write_text(out, render_report(run_dir))
    log.info("wrote report %s", out)
    return out
