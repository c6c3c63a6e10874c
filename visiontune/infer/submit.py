"""Kaggle-style submissions: ``visiontune submit MODEL TEST_DIR --out submission.csv``.

* default (dog breeds): ``id`` (the file name without its suffix) + one probability column per class,
  in class order; each row sums to 1.
* ``binary=True`` (dogs vs cats): ``id,label`` where ``label`` is the probability of class 1
  (the second class in sorted order: ``dogs`` for ``cats``/``dogs``).

Rows are in id order (numeric ids numerically). Every test image must be readable: a submission
with missing rows would be rejected, so an unreadable file is an error that names it.

Spreadsheet safety: an id or class-name header that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@`` first, e.g. a file ``=HYPERLINK(...).jpg``) is written with a leading ``'``
(:func:`visiontune.utils.text.spreadsheet_safe`) and a warning says how many cells were changed. Kaggle's
ids (hex hashes, numbers) never start with those, so they are written exactly as they are.
``exact_ids=True`` (``--exact-ids``) writes every id and header exactly, for a scorer that needs them so.

>>> make_submission("runs/dogbreeds", "data/dogbreeds/test", "submission.csv")  # doctest: +SKIP
PosixPath('submission.csv')
"""
from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write_text
from ..utils.text import printable, spreadsheet_safe
from .predict import _readable, list_images, load_model, predict_with_progress

__all__ = ["make_submission"]


def _id_key(stem: str):
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


class FormulaCellWarning(UserWarning):
    """Some ids or class names were written with a leading ``'`` so that a spreadsheet does not run them."""


def make_submission(model, test_dir, out, binary: bool = False, tta: bool = False, batch_size: int = 32,
                    progress: bool | None = None, exact_ids: bool = False) -> Path:
    """Write the submission CSV for every image in ``test_dir``; return its path.

    ``exact_ids=False`` (default): an id or header that starts like a spreadsheet formula gets a leading
    ``'`` (with a warning); ``True``: ids and headers exactly as they are.

    On a terminal a progress bar shows while the images are checked and predicted; in a log nothing.
    """
    m = load_model(model)
    if m.kind != "single":
        raise ValueError(f"submissions need a single-label classifier; this model is {m.kind!r}")
    if binary and len(m.classes) != 2:
        raise ValueError(f"--binary needs a two-class model; this one has {len(m.classes)} classes")
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise FileNotFoundError(f"test folder {test_dir} does not exist")
    paths, _ = _readable(list_images([test_dir]), strict=True, progress=progress)
    ids = [p.stem for p in paths]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{test_dir} holds files with the same name and different suffixes; ids must be unique")
    order = sorted(range(len(paths)), key=lambda i: _id_key(ids[i]))
    paths, ids = [paths[i] for i in order], [ids[i] for i in order]
    probs = np.asarray(predict_with_progress(m, paths, tta=tta, batch_size=batch_size, strict=True,
                                             desc="submission", progress=progress), dtype=np.float64)
    probs = np.clip(probs, 0.0, None)
    probs /= probs.sum(axis=1, keepdims=True)  # float32 exp(log_softmax) sums to 1 within ~1e-6; make it exact
    cell = (lambda t: t) if exact_ids else spreadsheet_safe
    changed = [t for t in ids + ([] if binary else list(m.classes)) if cell(t) != t]
    if changed:
        warnings.warn(f"visiontune: {len(changed)} id(s) or class name(s) start like a spreadsheet formula (e.g. "
                      f"{printable(changed[0])!r}); written with a leading ' so that a spreadsheet shows them as "
                      "text. --exact-ids (exact_ids=True) writes them exactly", FormulaCellWarning, stacklevel=2)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if binary:
        w.writerow(["id", "label"])
        for i, p in zip(ids, probs):
            w.writerow([cell(i), f"{p[1]:.8g}"])
    else:
        w.writerow(["id"] + [cell(c) for c in m.classes])
        for i, p in zip(ids, probs):
            w.writerow([cell(i)] + [f"{v:.8g}" for v in p])
    out = Path(out)
    atomic_write_text(out, buf.getvalue())
    return out
