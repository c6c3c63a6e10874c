"""The self-contained HTML run report: the page.

:func:`render_report` turns a :class:`~visiontune.report.records.RunRecords` (built from a run folder by
:func:`visiontune.run.reporting.report_records`; ``visiontune.run.write_report(run_dir)`` reads the folder
and writes ``report.html``) into one page: every image is an embedded base64 PNG, there are no external
URLs and no scripts. A section whose inputs are missing (a partial or interrupted run) shows a short
"not available" note. The report never opens a run folder's files itself.

The report leads with the answer. Sections, in order (:data:`SECTIONS`): the summary (accuracy, TTA
accuracy, log loss, wall time, the per-class precision / recall / F1 table, and which steps ran or were
skipped and why), timing, class counts, image sizes, augmentation previews, learning-rate finder,
learning-rate schedule, training history, confusion matrix, most-confused pairs, top losses, and last
the run configuration in words (``yes`` / ``no`` / ``not set``, not Python's ``True`` / ``None``).
The sections are drawn by :mod:`.summary`, :mod:`.training` and :mod:`.predictions`; the confusion
matrix, the most-confused pairs, the top losses and the per-class table come from
:class:`visiontune.report.interpret.ClassificationInterpretation`, the same code as ``learn.interpret()``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from .markup import _esc, _na
from .predictions import _sec_confusion, _sec_most_confused, _sec_top_losses
from .records import RunRecords
from .summary import _sec_config, _sec_summary, _sec_timing
from .training import (
    _sec_aug_previews,
    _sec_class_counts,
    _sec_history,
    _sec_lr_find,
    _sec_schedule,
    _sec_sizes,
)

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


_BUILDERS: dict[str, Callable[[RunRecords], str]] = {
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


def render_report(run: RunRecords) -> str:
    """The report's HTML text for a run's records (what ``visiontune.run.write_report`` writes)."""
    body = []
    for title in SECTIONS:
        try:
            if title in run.problems:  # its inputs could not be read (logged when they were read)
                content = _na(f"could not build this section ({run.problems[title]})")
            else:
                content = _BUILDERS[title](run)
        except Exception as e:  # a damaged input never takes the whole report down
            # the traceback only where debugging was asked for (with no handler set up, Python's last-resort
            # handler would print it to every user)
            log.warning("report: section %r failed: %s", title, e, exc_info=log.isEnabledFor(logging.DEBUG))
            content = _na(f"could not build this section ({type(e).__name__}: {e})")
        body.append(f'<section id="{_anchor(title)}"><h2>{_esc(title)}</h2>{content}</section>')
    name = run.name
    arch = run.config.get("arch") if isinstance(run.config, dict) else None
    n_cls = f"{len(run.classes)} classes" if run.classes else "classes unknown"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{_anchor(t)}">{_esc(t)}</a>' for t in SECTIONS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"{OUR_TITLE}{_esc(name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>visiontune run report: {_esc(name)}</h1>\n"
        f'<p class="muted">{_esc(arch or "architecture unknown")} · {_esc(run.kind)}-label · {_esc(n_cls)} · '
        f"generated {_esc(now)}</p>\n<nav>{nav}</nav>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


OUR_TITLE = "<title>visiontune report: "  # how a report this code wrote begins its title
