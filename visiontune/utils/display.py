"""Showing things to a person: figures that display themselves, and progress bars that fit where they run.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas (no pyplot state, no backend switch:
safe in scripts, threads and headless machines). :class:`DisplayFigure` adds ``_repr_png_``, so a
figure returned as a notebook cell's value displays inline in any Jupyter kernel, without
``%matplotlib inline`` and without pyplot having been imported.

:func:`progress_bar` is the one progress bar: in a Jupyter kernel a widget bar when ipywidgets is
installed, else a plain text bar on stdout (no "IProgress not found" warning, no red stderr box); in a
terminal a text bar on stderr; in a log (not a TTY) nothing.

Text drawn from data (class names, file names) goes through :func:`plain_text`: a ``$`` would
otherwise start matplotlib's mathtext ("price $5 and $10" rendered as "price 5and10").

>>> fig = new_figure(2, 2)
>>> fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
>>> plain_text("price $5 and $10")
'price \\\\$5 and \\\\$10'
"""
from __future__ import annotations

import functools
import io
import sys

__all__ = ["DisplayFigure", "DPI", "in_notebook", "new_figure", "plain_text", "png_bytes", "progress_bar",
           "quiet_tqdm_auto"]

DPI = 90


@functools.cache
def _display_figure_class():
    # matplotlib loads on the first figure, not on import: `visiontune predict` only needs the progress bar
    from matplotlib.figure import Figure

    class DisplayFigure(Figure):
        """A ``Figure`` that IPython displays as a PNG (``_repr_png_``)."""

        def _repr_png_(self) -> bytes:
            return png_bytes(self)

    DisplayFigure.__module__, DisplayFigure.__qualname__ = __name__, "DisplayFigure"
    return DisplayFigure


def __getattr__(name: str):
    if name == "DisplayFigure":
        return _display_figure_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_figure(w: float = 6.0, h: float = 3.2, dpi: int = DPI):
    """A new :class:`DisplayFigure` of ``w`` x ``h`` inches with its own Agg canvas and a constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _display_figure_class()(figsize=(w, h), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes (the figure's own dpi unless ``dpi`` is given)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def plain_text(text) -> str:
    """``text`` as matplotlib shows it literally: ``$`` escaped, so no mathtext is parsed."""
    return str(text).replace("$", r"\$")


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) process."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:  # an IPython too old or too partial to ask
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def quiet_tqdm_auto() -> None:
    """In Jupyter without ipywidgets, import ``tqdm.auto`` once with its "IProgress not found" warning silenced.

    Libraries under the learner (huggingface_hub, through timm) import ``tqdm.auto`` on load; without
    ipywidgets that import prints the warning as a red box in the first cell that builds a learner,
    although visiontune's own bars are plain text there. ``tqdm.auto`` then falls back to text bars, as
    the warning would have said. Anywhere else this does nothing.
    """
    if "tqdm.autonotebook" in sys.modules or not in_notebook() or _has_widgets():
        return
    import warnings

    from tqdm.std import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", leave: bool = False, enabled: bool = True):
    """A tqdm bar suited to where the process runs (see the module docstring); ``enabled=False``: silent.

    >>> with progress_bar(3, "demo", enabled=False) as bar:
    ...     bar.update(3)
    """
    if in_notebook():
        if _has_widgets():
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=not enabled)
        from tqdm.std import tqdm as text_tqdm

        return text_tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=not enabled, file=sys.stdout)
    from tqdm.std import tqdm as text_tqdm

    # disable=None: silent when stderr is not a terminal (logs, CI), a bar when it is
    return text_tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=None if enabled else True)
