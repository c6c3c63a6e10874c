"""A labels CSV read and checked: file ids and labels (:func:`read_label_csv`), then the labels parsed
into single-label classes, multi-label tags or regression values (:func:`_parse_labels`). Every problem
is an error naming the rows (0-based, header excluded) and their lines in the file.

>>> _rows([0, 1], skip_header=True)
'0 (line 2), 1 (line 3)'
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..utils.text import nfc
from .errors import UnicodeNamesWarning, _shown
from .paths import id_key

__all__ = ["read_label_csv"]


def _line(i: int, skip_header: bool) -> int:
    return i + (2 if skip_header else 1)


def _rows(idx, skip_header: bool, limit: int = 10) -> str:
    idx = list(idx)
    s = ", ".join(f"{i} (line {_line(i, skip_header)})" for i in idx[:limit])
    return s + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def read_label_csv(csv_path: Path, skip_header: bool) -> tuple[list[str], list[str]]:
    import pandas as pd

    if not csv_path.is_file():
        raise FileNotFoundError(f"labels CSV {csv_path} not found")
    try:
        df = pd.read_csv(csv_path, header=0 if skip_header else None, dtype=str, keep_default_na=False,
                         na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"labels CSV {csv_path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot parse labels CSV {csv_path}: {e}") from e
    if df.shape[1] < 2:
        raise ValueError(
            f"labels CSV {csv_path.name} needs two columns (file id, label); found {df.shape[1]} "
            f"column(s): {[str(c) for c in df.columns]}. Is it comma-separated?"
        )
    if len(df) == 0:
        raise ValueError(f"labels CSV {csv_path.name} has a header but no rows")
    ids = [s.strip() for s in df.iloc[:, 0].astype(str)]
    labels = [s.strip() for s in df.iloc[:, 1].astype(str)]
    name = csv_path.name
    empty = [i for i, s in enumerate(ids) if not s]
    if empty:
        raise ValueError(f"{name}: empty file id in row(s) {_rows(empty, skip_header)}")
    seen: dict[str, int] = {}
    dups = []
    for i, s in enumerate(ids):
        key = id_key(s)
        if key in seen:
            j = seen[key]
            same = f"{s!r}" if s == ids[j] else f"{ids[j]!r} and {s!r} (the same file {key!r})"
            dups.append(f"{same} in rows {j} and {i} (lines {_line(j, skip_header)}, {_line(i, skip_header)})")
        else:
            seen[key] = i
    if dups:
        raise ValueError(f"{name}: duplicate file id(s): " + "; ".join(dups[:10])
                         + (f"; and {len(dups) - 10} more" if len(dups) > 10 else "")
                         + ". Each image must appear once.")
    return ids, labels


def _parse_labels(name: str, labels: list[str], continuous: bool, skip_header: bool):
    if continuous:
        vals, bad = [], []
        for i, s in enumerate(labels):
            try:
                v = [float(t) for t in s.split()]
            except ValueError:
                v = []
            if not v or not np.all(np.isfinite(v)):
                bad.append(i)
            vals.append(v)
        if bad:
            raise ValueError(f"{name}: continuous=True (--regression) needs a number in every label; bad or empty in row(s) "
                             f"{_rows(bad, skip_header)} (e.g. {labels[bad[0]]!r})")
        widths = {len(v) for v in vals}
        if len(widths) != 1:
            raise ValueError(f"{name}: rows hold different numbers of values ({sorted(widths)})")
        y = np.asarray(vals, dtype=np.float32)
        return "reg", [], (y[:, 0] if y.shape[1] == 1 else y)
    renamed = sorted({(s, nfc(s)) for s in labels if nfc(s) != s})
    if renamed:  # one class however its name is typed (composed or decomposed accents)
        warnings.warn(f"visiontune: {_shown(name)}: label(s) not in Unicode NFC: "
                      + ", ".join(f"{a!a} is read as {b!a}" for a, b in renamed[:10])
                      + (f" and {len(renamed) - 10} more" if len(renamed) > 10 else "")
                      + " (NFC, so the same name typed either way is one class)", UnicodeNamesWarning, stacklevel=4)
        labels = [nfc(s) for s in labels]
    tags = [s.split() for s in labels]
    if any(len(t) > 1 for t in tags):
        classes = sorted({t for ts in tags for t in ts})
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(tags), len(classes)), dtype=np.float32)
        for r, ts in enumerate(tags):
            y[r, [index[t] for t in ts]] = 1.0
        return "multi", classes, y
    empty = [i for i, t in enumerate(tags) if not t]
    if empty:
        raise ValueError(f"{name}: empty label in row(s) {_rows(empty, skip_header)}; "
                         "fill them in or remove those rows")
    flat = [t[0] for t in tags]
    classes = sorted(set(flat))
    index = {c: i for i, c in enumerate(classes)}
    return "single", classes, np.asarray([index[c] for c in flat], dtype=np.int64)
