"""Plots and the self-contained HTML run report, rendered from a plain :class:`RunRecords`
(``visiontune.run.write_report(run_dir)`` reads a run folder into one; ``visiontune report RUN``)."""
from __future__ import annotations

from .html import SECTIONS, render_report
from .records import RunRecords
from .summary import timing_table

__all__ = ["SECTIONS", "RunRecords", "render_report", "timing_table"]
