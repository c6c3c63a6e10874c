"""Figures that show themselves: one place where visiontune makes a matplotlib figure.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas (no pyplot state, no backend switch:
safe in scripts, threads and headless machines). :class:`DisplayFigure` adds ``_repr_png_``, so a
figure returned as a notebook cell's value displays inline in any Jupyter kernel, without
``%matplotlib inline`` and without pyplot having been imported.

Text drawn from data (class names, file names) goes through :func:`plain_text`: a ``$`` would
otherwise start matplotlib's mathtext ("price $5 and $10" rendered as "price 5and10").

>>> fig = new_figure(2, 2)
>>> fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
>>> plain_text("price $5 and $10")
'price \\\\$5 and \\\\$10'
"""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["DisplayFigure", "new_figure", "plain_text", "png_bytes", "DPI"]

DPI = 90


class DisplayFigure(Figure):
    """A ``Figure`` that IPython displays as a PNG (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def new_figure(w: float = 6.0, h: float = 3.2, dpi: int = DPI) -> DisplayFigure:
    """A new figure of ``w`` x ``h`` inches with its own Agg canvas and a constrained layout."""
    fig = DisplayFigure(figsize=(w, h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes (the figure's own dpi unless ``dpi`` is given)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def plain_text(text) -> str:
    """``text`` as matplotlib shows it literally: ``$`` escaped, so no mathtext is parsed."""
    return str(text).replace("$", r"\$")
