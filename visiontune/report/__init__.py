"""Plots and the self-contained HTML run report (``visiontune report RUN``)."""
from __future__ import annotations

from .html import SECTIONS, render_report, write_report

__all__ = ["SECTIONS", "render_report", "write_report"]
