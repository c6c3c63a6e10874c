"""``RunRecords``: everything the HTML report shows, as plain values.

The report renders from this record alone and never opens a run folder's files:
:func:`visiontune.run.reporting.report_records` builds it with :class:`visiontune.run.folder.RunFolder`'s
reads (the run's own files; images decoded through :mod:`visiontune.imaging.decode`, raster formats only;
thumbnails only of files inside the run's data folder). A missing or unreadable input is ``None`` here,
and its section shows a short "not available" note.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecords:
    name: str = ""  # the run folder's name (the page's title)
    config: dict | None = None  # config.json
    preprocessing: dict | None = None  # preprocessing.json
    classes: list[str] | None = None  # classes.json, else preprocessing.json's "classes"
    kind: str = "single"  # the data kind (utils.kinds.KINDS) named by preprocessing.json or config.json
    progress: dict | None = None  # progress.json
    metrics: list[dict] | None = None  # metrics.csv rows (else metrics.json's), one per epoch
    lr_find: Any = None  # lr_find.json as read (a list of sweeps, or one sweep)
    schedule: Any = None  # schedule.json as read ({phase: [lr per iteration]})
    data_summary: Any = None  # data_summary.json as read ({"class_counts", "sizes"})
    val_predictions: list[dict] | None = None  # val_predictions.csv rows (spreadsheet-safe cells undone)
    data_dir: Path | None = None  # the data folder config.json names (named in the top losses' note)
    aug_previews: bytes | None = None  # aug_previews.png as the PNG bytes to embed
    aug_previews_note: str = "aug_previews.png is missing"  # why aug_previews is None
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # fname -> PNG thumbnail of a top loss (absent:
    #                                                           not found, outside the data folder or unreadable)
    problems: dict[str, str] = field(default_factory=dict)  # section title -> why reading its inputs failed
