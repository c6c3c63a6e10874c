"""A run's report: its folder read into a :class:`~visiontune.report.RunRecords`
(:func:`report_records`), and ``report.html`` written from it (:func:`write_report`, ``visiontune report RUN``).

Whatever exists is read; a missing or damaged file becomes ``None`` (with a warning), and its section of
the report says "not available". Images are read through :class:`~visiontune.run.folder.RunFolder`: the
run's own ``aug_previews.png`` and, for the top losses, thumbnails of data images named by
``val_predictions.csv`` (only names that stay inside the data folder), all decoded through
:mod:`visiontune.imaging.decode` (raster formats only).
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from ..report import RunRecords, render_report, timing_table
from ..report.embed import THUMB_PX, embeddable_png, thumbnail_png
from ..report.html import OUR_TITLE
from ..report.predictions import thumbnails_wanted
from ..utils.atomic import atomic_write_text
from ..utils.kinds import KINDS
from .folder import RunFolder, read_csv_rows
from .progress import Progress

log = logging.getLogger(__name__)


def _read_json(folder: RunFolder, name: str):
    path = folder.file(name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("report: cannot read %s: %s", path, e)
        return None


def _read_csv(folder: RunFolder, name: str) -> list[dict] | None:
    path = folder.file(name)
    if not path.is_file():
        return None
    try:
        return read_csv_rows(path)
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        log.warning("report: cannot read %s: %s", path, e)
        return None


def _kind(preprocessing, config) -> str:
    for src in (preprocessing, config):
        if isinstance(src, dict) and src.get("kind") in KINDS:
            return src["kind"]
    return "single"


def _metrics(folder: RunFolder) -> list[dict] | None:
    rows = _read_csv(folder, "metrics.csv")
    if rows is None:
        data = _read_json(folder, "metrics.json")
        if isinstance(data, dict):
            data = data.get("rows") or data.get("epochs")
        rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else None
    return rows or None


def _aug_previews(folder: RunFolder, records: RunRecords) -> None:
    if not folder.file("aug_previews.png").is_file():
        return  # records.aug_previews_note: missing
    from ..imaging.limits import ImageLoadError

    try:  # a regular file, a raster format (an EPS under this name never reaches Ghostscript), within the caps
        data, im = folder.read_image("aug_previews.png")
    except ImageLoadError as e:
        records.aug_previews_note = f"aug_previews.png cannot be shown: {e.reason}"
        return
    records.aug_previews = embeddable_png(data, im)


def _thumbnails(folder: RunFolder, records: RunRecords) -> None:
    """PNG thumbnails of the images the top losses show (only inside the data folder: RunFolder.data_image)."""
    from ..imaging.limits import ImageLoadError

    for fname in thumbnails_wanted(records):
        if fname in records.thumbnails:
            continue
        try:  # the one decode path: regular files, raster formats only, caps (draft: a thumbnail needs few pixels)
            im = folder.data_image(records.data_dir, fname, draft=THUMB_PX * 2)
        except ImageLoadError as e:
            log.warning("report: cannot read thumbnail %s: %s", e.path, e.reason)
            continue
        if im is not None:
            records.thumbnails[fname] = thumbnail_png(im)


def _guarded(title: str, read, folder: RunFolder, records: RunRecords) -> None:
    """``read(folder, records)``; an unexpected error makes section ``title`` say so, as a rendering error does."""
    try:
        read(folder, records)
    except Exception as e:  # a damaged input never takes the whole report down
        log.warning("report: section %r failed: %s", title, e, exc_info=log.isEnabledFor(logging.DEBUG))
        records.problems[title] = f"{type(e).__name__}: {e}"


def report_records(folder: RunFolder) -> RunRecords:
    """Everything the report shows of the run in ``folder``, read once."""
    config = _read_json(folder, "config.json")
    preprocessing = _read_json(folder, "preprocessing.json")
    classes = _read_json(folder, "classes.json")
    if classes is None and isinstance(preprocessing, dict):
        classes = preprocessing.get("classes")
    progress = _read_json(folder, "progress.json")
    records = RunRecords(
        name=folder.path.resolve().name,
        config=config,
        preprocessing=preprocessing,
        classes=[str(c) for c in classes] if isinstance(classes, list) else None,
        kind=_kind(preprocessing, config),
        progress=progress if isinstance(progress, dict) else None,
        metrics=_metrics(folder),
        lr_find=_read_json(folder, "lr_find.json"),
        schedule=_read_json(folder, "schedule.json"),
        data_summary=_read_json(folder, "data_summary.json"),
        val_predictions=_read_csv(folder, "val_predictions.csv"),
        data_dir=folder.data_dir(config),
    )
    _guarded("Augmentation previews", _aug_previews, folder, records)
    _guarded("Top losses", _thumbnails, folder, records)
    return records


def is_our_report(path: Path) -> bool:
    """Whether ``path`` is a regular file that :func:`~visiontune.report.render_report` wrote (its head names
    visiontune)."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and OUR_TITLE in head


def write_report(run_dir, out=None) -> Path:
    """Write the self-contained report for ``run_dir`` to ``out`` (default ``run_dir/report.html``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    out = Path(out) if out is not None else run_dir / "report.html"
    if (out.exists() or out.is_symlink()) and not is_our_report(out):
        raise FileExistsError(f"{out} exists and is not a report visiontune wrote; it was left as it is: "
                              "move it away, or give --out another file")
    atomic_write_text(out, render_report(report_records(RunFolder(run_dir))))
    log.info("wrote report %s", out)
    return out


def write_final_report(folder: RunFolder, st: Progress, lap) -> Path:
    """report.html, whose Timing table includes the report's own lap (rendered, timed, then filled in)."""
    html = render_report(report_records(folder))
    before = timing_table(json.loads(json.dumps(st.to_dict())))
    lap("report")
    after = timing_table(json.loads(json.dumps(st.to_dict())))
    folder.write_text("report.html", html.replace(before, after, 1))
    return folder.file("report.html")
