"""The run: the recipe (``train_run``: the lesson's 8 steps, resumable), its folder (``RunFolder``: the one
reader and writer of the run-folder format, with its lock and path confinement) and its typed progress record
(``Progress``), and its report (``write_report``: the folder read into ``report.RunRecords``, then
``report.html``). The layer above train, infer and report (docs/design.md)."""
from __future__ import annotations

from ..utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".progress": ("Progress", "Skipped"),
    ".folder": ("RunFolder", "RunFolderBusy", "RunFolderError"),
    ".recipe": ("RunResult", "TrainConfig", "train_run"),
    ".exported": ("export_run", "load_run_model"),
    ".reporting": ("report_records", "write_report"),
})
