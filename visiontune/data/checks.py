"""The checks made when data is built, before training: one batch fits in memory
(:func:`check_size_fits`, before any file is read), every file decodes (:func:`_filter_readable`:
each file decoded once, in parallel, draft mode, results cached by path/size/mtime), every class can be
learned (:func:`_check_classes`, single-label data).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..imaging.probe import probe_images
from .errors import (
    ClassesWarning,
    SizeTooLargeError,
    SkippedFilesWarning,
    UnreadableFilesError,
    _list_skipped,
    _shown,
    _some,
)

__all__ = ["available_memory", "batch_memory_bytes", "check_size_fits"]


def available_memory() -> int | None:
    """Bytes of memory this process can still get: the system's available memory, lowered to what the
    cgroup (container) limit leaves; ``None`` when unknown."""
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported here: ask the OS
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:  # cgroup v2: memory.max - memory.current
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int((cg / "memory.current").read_text().strip())
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


_BATCH_MEMORY_FACTOR = 10
"""A batch needs at least its float32 input and the first layers' activations: ~10 times the input."""


def batch_memory_bytes(sz: int, bs: int) -> int:
    """A lower bound of the memory one training batch needs: ``bs x 3 x sz x sz`` float32 values, times
    :data:`_BATCH_MEMORY_FACTOR` (the uint8 and normalised copies and the first layers' activations).

    >>> batch_memory_bytes(224, 64) / 1e6   # 224 px, 64 images: ~385 MB (fine anywhere)
    385.35168
    >>> batch_memory_bytes(100_000, 32) / 1e12  # 100,000 px: ~38 TB
    38.4
    """
    return int(bs) * 3 * int(sz) ** 2 * 4 * _BATCH_MEMORY_FACTOR


def check_size_fits(sz: int, bs: int, available: int | None = None) -> None:
    """Raise :class:`SizeTooLargeError` when one batch of ``bs`` images of ``sz`` pixels cannot fit in
    ``available`` bytes (default: :func:`available_memory`), instead of being killed for memory later."""
    need = batch_memory_bytes(sz, bs)
    avail = available_memory() if available is None else available
    if avail is None or need <= avail:
        return
    raise SizeTooLargeError(
        f"image size {sz} with batch size {bs} needs at least {_gb(need)} of memory for one batch "
        f"({bs} x 3 x {sz} x {sz} float32 values and the first layers' activations), but {_gb(avail)} is "
        "available: use a smaller --size (sz; 224 is usual) or a smaller --bs")


def _gb(n: int) -> str:
    return f"{n / 1e12:.1f} TB" if n >= 1e12 else f"{n / 1e9:.1f} GB"


def _check_classes(root: Path, classes: Sequence, trn_y: np.ndarray, val_y: np.ndarray | None = None) -> None:
    """Single-label data: warn (one line each) about classes without training images, a lone class, and
    classes without a validation image."""
    counts = np.bincount(np.asarray(trn_y, dtype=np.int64), minlength=len(classes))
    empty = [str(c) for c, n in zip(classes, counts) if n == 0]
    usable = [str(c) for c, n in zip(classes, counts) if n > 0]
    if len(usable) < 2:
        warnings.warn(
            f"visiontune: only one class with usable training images under {_shown(root)} ({usable[0]!r}"
            + (f"; none in {empty}" if empty else "") + "): a classifier needs at least two classes to learn "
            "anything (from_paths expects path/train/<class>/<images>, one folder per class).",
            ClassesWarning, stacklevel=4)
    elif empty:
        warnings.warn(f"visiontune: class(es) with no usable training images: {_some(empty)}; the model can never "
                      "predict them. Add images or remove those class folders.", ClassesWarning, stacklevel=4)
    if val_y is None or not len(val_y) or not len(classes):
        return
    val_counts = np.bincount(np.asarray(val_y, dtype=np.int64), minlength=len(classes))
    no_val = [str(c) for c, n in zip(classes, val_counts) if n == 0]
    if no_val:
        warnings.warn(f"visiontune: {len(no_val)} of {len(classes)} classes have no validation image, "
                      f"{_some(no_val)}: their accuracy is never measured. Give every class at least one "
                      "validation image (more images per class, or a valid/<class>/ folder for each).",
                      ClassesWarning, stacklevel=4)


def _filter_readable(root: Path, splits: dict, strict: bool, max_pixels) -> tuple[dict, list]:
    """Probe every file of every split at once; drop unreadable ones (or raise under strict)."""
    order = [(name, i) for name, (fn, _) in splits.items() for i in range(len(fn))]
    all_files = [splits[name][0][i] for name, i in order]
    reasons = probe_images([root / f for f in all_files], max_pixels=max_pixels)
    bad = {order[k]: r for k, r in enumerate(reasons) if r is not None}
    skipped = [(all_files[k], r) for k, r in enumerate(reasons) if r is not None]
    if skipped and strict:
        raise UnreadableFilesError(skipped, root)
    if skipped:
        warnings.warn(
            f"visiontune: skipped {len(skipped)} of {len(all_files)} file(s) under {_shown(root)} that cannot be used "
            f"as images (strict=True makes this an error; the list is in data.skipped):\n" + _list_skipped(skipped),
            SkippedFilesWarning,
            stacklevel=4,
        )
    out = {}
    for name, (fn, y) in splits.items():
        keep = [i for i in range(len(fn)) if (name, i) not in bad]
        out[name] = ([fn[i] for i in keep], y[keep] if len(fn) else y)
    return out, skipped
