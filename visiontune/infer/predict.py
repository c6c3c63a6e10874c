"""Predictions from an exported model: ``visiontune predict MODEL IMAGES_OR_DIR...``.

>>> rows = predict_paths("runs/ants", ["ant.jpg", "photos/"], top_k=2)   # doctest: +SKIP
>>> rows[0]["top"]                                                         # doctest: +SKIP
[('ants', 0.97), ('bees', 0.03)]

``MODEL`` is a run folder (its ``model.json``), a ``model.json`` or the model file beside it.
Folders are searched recursively for image files (hidden files skipped), in sorted order.
``tta=True`` averages the exported model's five deterministic views (see ``ExportedModel``).

On many images a progress bar shows on a terminal (stderr a TTY); in a log (not a TTY) nothing is printed.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils.text import printable, spreadsheet_safe
from .exported import ExportedModel, UnreadableImageWarning

__all__ = ["load_model", "list_images", "predict_paths", "format_predictions", "predict_with_progress"]

PROGRESS_MIN_IMAGES = 64  # fewer images than this finish before a bar would be worth drawing


def load_model(model) -> ExportedModel:
    """An :class:`ExportedModel` from a run folder, ``model.json``, or ``model.onnx`` / ``model.pt``."""
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist (give a run folder, model.json or model.onnx)")
    if path.is_dir() and not (path / "model.json").is_file():
        raise FileNotFoundError(f"{path} holds no model.json: run `visiontune export {path}` first")
    return ExportedModel.load(path)


def list_images(inputs: Sequence) -> list[Path]:
    """Image files named in ``inputs`` (files, or folders searched recursively), in order, without repeats."""
    from ..imaging.limits import IMAGE_EXTENSIONS

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise FileNotFoundError(f"no image files in folder {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"image or folder {p} does not exist")
    return list(dict.fromkeys(out))


def _bar(total: int, desc: str, progress: bool | None):
    """A terminal progress bar (silent when stderr is not a TTY, or for a few images); ``progress=False``: none."""
    from ..utils.display import progress_bar

    enabled = progress if progress is not None else total >= PROGRESS_MIN_IMAGES
    return progress_bar(total, desc, unit="image", enabled=bool(enabled))


def _readable(paths: list[Path], strict: bool, progress: bool | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    from ..imaging.probe import probe_image

    ok, bad = [], []
    with _bar(len(paths), "checking images", progress) as bar:
        for p in paths:
            reason = probe_image(p)
            (bad.append((p, reason)) if reason else ok.append(p))
            bar.update(1)
    if bad and strict:
        raise ValueError(f"{len(bad)} file(s) cannot be read as images, e.g. {bad[0][0]}: {bad[0][1]}")
    return ok, bad


def predict_with_progress(m: ExportedModel, paths: Sequence, tta: bool = False, batch_size: int = 32,
                          strict: bool = False, desc: str = "predict", progress: bool | None = None) -> np.ndarray:
    """``m.predict_images(paths)`` a few batches at a time, with a progress bar on a terminal.

    The same rows as one call (NaN for an unreadable file); ``m.unreadable`` lists every such file.
    ``progress``: None = a bar on a terminal for 64 images or more, False = never, True = on a terminal.
    """
    paths = list(paths)
    step = max(1, batch_size) * 4
    outs, unreadable = [], []
    with _bar(len(paths), desc, progress) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)  # one warning for the whole run, below
        for i in range(0, len(paths), step):
            chunk = paths[i:i + step]
            outs.append(m.predict_images(chunk, tta=tta, batch_size=batch_size, strict=strict))
            unreadable += m.unreadable
            bar.update(len(chunk))
    m.unreadable = unreadable
    if unreadable:
        warnings.warn(f"visiontune: {len(unreadable)} of {len(paths)} image(s) could not be read; their rows are "
                      "NaN (strict=True makes this an error):\n" + "\n".join(f"  {printable(p)}: {printable(r)}"
                                                                             for p, r in unreadable[:100]),
                      UnreadableImageWarning, stacklevel=2)
    if not outs:
        return np.zeros((0, len(m.classes)), dtype=np.float32)
    return np.concatenate(outs)


def predict_paths(model, inputs: Sequence, top_k: int = 3, tta: bool = False, batch_size: int = 32,
                  strict: bool = False, progress: bool | None = None) -> list[dict]:
    """One dict per image: ``file``, ``top`` ([(class, probability)] best first), ``probs`` (all classes).

    Unreadable files are skipped with a note on stderr (``strict=True``: an error); when none of them
    can be read, a ValueError names the first one and why. ``top_k`` is capped at the number of classes.
    For a regression model ``top`` is empty and ``values`` holds the outputs. ``progress``: see
    :func:`predict_with_progress` (a bar on a terminal, nothing in a log).
    """
    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    inputs = list(inputs)
    m = model if isinstance(model, ExportedModel) else load_model(model)
    top_k = min(top_k, len(m.classes))
    found = list_images(inputs)
    if not found:
        raise ValueError("no images given: name image files and/or folders holding them")
    paths, bad = _readable(found, strict, progress)
    if paths:
        with warnings.catch_warnings():  # the skipped files are reported below, once
            warnings.simplefilter("ignore", UnreadableImageWarning)
            out = predict_with_progress(m, paths, tta=tta, batch_size=batch_size, strict=strict, progress=progress)
        # a file that passed the probe but failed when decoded for the model has a NaN row: skip it too
        failed = {p for p, _ in m.unreadable}
        bad += [(Path(p), r) for p, r in m.unreadable]
        keep = [i for i, p in enumerate(paths) if str(p) not in failed]
        paths, out = [paths[i] for i in keep], out[keep]
    if not paths:
        where = ", ".join(map(str, inputs[:3])) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
        first, reason = bad[0]
        raise ValueError(f"no readable images among {len(found)} file(s) in {where}: {first}: {reason}")
    for p, reason in bad:
        print(f"visiontune: skipped {printable(p)}: {printable(reason)}", file=sys.stderr)
    rows = []
    for p, o in zip(paths, out):
        if m.kind == "reg":
            rows.append({"file": str(p), "top": [], "values": dict(zip(m.classes, map(float, o)))})
            continue
        order = np.argsort(-o, kind="stable")[:top_k]
        rows.append({"file": str(p), "top": [(m.classes[i], float(o[i])) for i in order],
                     "probs": dict(zip(m.classes, map(float, o)))})
    return rows


def format_predictions(rows: list[dict], fmt: str = "csv", top_k: int = 3) -> str:
    """CSV (file, label_1, prob_1, ...) or JSON text for :func:`predict_paths` rows.

    In the CSV, a file name or label that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``
    first) gets a leading ``'`` (:func:`visiontune.utils.text.spreadsheet_safe`); JSON keeps them exact.
    """
    if fmt == "json":
        return json.dumps([{"file": r["file"], **({"top": [{"label": c, "prob": p} for c, p in r["top"]]} if r["top"]
                                                  or "values" not in r else {}),
                            **({"values": r["values"]} if "values" in r else {})} for r in rows], indent=2) + "\n"
    if fmt != "csv":
        raise ValueError(f"invalid format {fmt!r}. Only csv, json are supported.")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if rows and "values" in rows[0]:
        names = list(rows[0]["values"])
        w.writerow(["file"] + [spreadsheet_safe(n) for n in names])
        for r in rows:
            w.writerow([spreadsheet_safe(r["file"])] + [f"{v:.6g}" for v in r["values"].values()])
        return buf.getvalue()
    k = max((len(r["top"]) for r in rows), default=top_k)
    w.writerow(["file"] + [h for i in range(1, k + 1) for h in (f"label_{i}", f"prob_{i}")])
    for r in rows:
        w.writerow([spreadsheet_safe(r["file"])] + [v for c, p in r["top"] for v in (spreadsheet_safe(c), f"{p:.6f}")])
    return buf.getvalue()
