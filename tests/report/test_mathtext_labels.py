"""Issue 17, item 12: class names, file names and metric names are plain text in every plot, never mathtext.

A class named ``cost$\\foo$x`` (an unknown TeX command) or ``price $5 and $10`` renders, shows literally,
and the report keeps all its sections.
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np

from visiontune.report import SECTIONS, figures
from visiontune.run import write_report

NAMES = ["cost$\\foo$x", "price $5 and $10", "ants"]


def _render(fig) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def _texts(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        out += [ax.get_title()] + [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return out


def test_figures_render_dollar_names_literally():
    from visiontune.report.interpret import plot_confusion_matrix

    fig = plot_confusion_matrix(np.array([[3, 1, 0], [0, 2, 1], [1, 0, 4]]), NAMES, title="matrix of $\\foo$")
    _render(fig)
    assert "cost$\\foo$x" in [t.replace("\\$", "$") for t in _texts(fig)]
    _render(figures.fig_class_counts({n: i + 1 for i, n in enumerate(NAMES)}, title="counts $\\foo$"))
    rows = [{"phase": "p$\\foo$", "epoch": i, "trn_loss": 1.0 / (i + 1), "val_loss": 1.0, "cost$\\foo$x": 0.5}
            for i in range(3)]
    _render(figures.fig_metrics(rows, ("trn_loss", "val_loss"), ["cost$\\foo$x"]))


def test_report_with_dollar_class_names_has_every_section(run_folder):
    old = ["ants", "bees", "wasps"]
    swap = dict(zip(old, NAMES[:2] + ["w$\\alpha$"]))
    for name in ("classes.json",):
        (run_folder / name).write_text(json.dumps([swap[c] for c in json.loads((run_folder / name).read_text())]))
    pre = json.loads((run_folder / "preprocessing.json").read_text())
    pre["classes"] = [swap[c] for c in pre["classes"]]
    (run_folder / "preprocessing.json").write_text(json.dumps(pre))
    summary = json.loads((run_folder / "data_summary.json").read_text())
    summary["class_counts"] = {swap[c]: n for c, n in summary["class_counts"].items()}
    (run_folder / "data_summary.json").write_text(json.dumps(summary))
    with open(run_folder / "val_predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    rows[0] = rows[0][:3] + [f"p_{swap[h[2:]]}" for h in rows[0][3:]]
    rows[1:] = [[r[0], swap[r[1]], swap[r[2]]] + r[3:] for r in rows[1:]]
    with open(run_folder / "val_predictions.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with open(run_folder / "metrics.csv", newline="") as f:
        metrics = list(csv.reader(f))
    metrics[0][5] = "cost$\\foo$x"  # a metric named like a class: its legend entry
    with open(run_folder / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows(metrics)

    text = write_report(run_folder).read_text(encoding="utf-8")
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    assert "Not available" not in text and "could not be drawn" not in text.lower()
    assert "price $5 and $10" in text
