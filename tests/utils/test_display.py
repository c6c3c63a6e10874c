"""utils.display: figures that display themselves; one progress bar for terminal, notebook (with or without
ipywidgets) and log; tqdm.auto imported quietly in a notebook without ipywidgets."""
import io
import subprocess
import sys
import textwrap
import types

import pytest

from visiontune.utils import display


def test_figures_have_a_png_repr_and_no_pyplot():
    code = "import sys; from visiontune.utils.display import new_figure; f = new_figure(2, 2); " \
           "print(f._repr_png_()[:4] == b'\\x89PNG', 'matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_text_bar_on_stdout_in_a_notebook_without_widgets(monkeypatch):
    from tqdm.std import tqdm as std_tqdm

    monkeypatch.setattr(display, "in_notebook", lambda: True)
    monkeypatch.setattr(display, "_has_widgets", lambda: False)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    with display.progress_bar(4, "epoch 0", unit="batch") as bar:
        bar.update(4)
    assert type(bar) is std_tqdm and bar.fp is not None
    assert buf.getvalue().startswith("\repoch 0:   0%|          | 0/4 [00:00<?, ?batch/s]")  # on stdout, not a TTY


def test_widget_bar_in_a_notebook_with_widgets(monkeypatch):
    made = []

    class FakeNotebookBar:
        def __init__(self, **kw):
            made.append(kw)

    fake = types.ModuleType("tqdm.notebook")
    fake.tqdm = FakeNotebookBar
    monkeypatch.setitem(sys.modules, "tqdm.notebook", fake)
    monkeypatch.setattr(display, "in_notebook", lambda: True)
    monkeypatch.setattr(display, "_has_widgets", lambda: True)
    assert isinstance(display.progress_bar(3, "predict"), FakeNotebookBar)
    assert made == [{"total": 3, "desc": "predict", "unit": "it", "leave": False, "disable": False}]


def test_silent_in_a_log(monkeypatch):
    monkeypatch.setattr(display, "in_notebook", lambda: False)
    err = io.StringIO()  # not a TTY
    monkeypatch.setattr(sys, "stderr", err)
    with display.progress_bar(3, "predict") as bar:
        bar.update(3)
    assert err.getvalue() == ""


def test_tqdm_auto_imported_without_the_ipywidgets_warning():
    """In a (pretended) kernel without ipywidgets, importing tqdm.auto warns; quiet_tqdm_auto() first keeps it quiet."""
    code = textwrap.dedent("""
        import sys, types, warnings
        import visiontune.utils.display as d
        d.in_notebook = lambda: True
        d._has_widgets = lambda: False
        sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # what tqdm.autonotebook checks
        ip = types.SimpleNamespace(__class__=type("ZMQInteractiveShell", (), {}))
        sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: ip)
        sys.modules["tqdm.notebook"] = types.SimpleNamespace(WARN_NOIPYW="IProgress not found", IProgress=None)
        if QUIET:
            d.quiet_tqdm_auto()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import tqdm.auto
        print(len([x for x in w if "IProgress" in str(x.message)]))
    """)
    for quiet, expect in ((False, "1"), (True, "0")):
        out = subprocess.run([sys.executable, "-c", f"QUIET = {quiet}\n" + code], capture_output=True, text=True,
                             timeout=120)
        assert out.stdout.strip() == expect, (quiet, out.stdout, out.stderr)
