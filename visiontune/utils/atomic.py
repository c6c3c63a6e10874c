"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A crash or a full disk mid-write never leaves a half-written file under the final name.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(d / "x.txt", "w") as f:
...     _ = f.write("hello")
>>> (d / "x.txt").read_text()
'hello'
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None, errors: str | None = None):
    """Open a temp file for writing; on success rename it over ``path``; on error remove it.

    An ``OSError`` while writing (a full disk, a quota, a read-only folder) is re-raised as the same
    ``OSError`` type and errno with a message naming ``path`` and saying that the previous version,
    if any, is unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from e
    in_body = False
    try:
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding=encoding if text else None, errors=errors if text else None) as f:
            in_body = True
            yield f
            in_body = False
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # our own flush/fsync/rename failed, or the caller's write hit a full or read-only disk
        # (other errors from the caller's block, e.g. reading a source file, pass through unchanged)
        if isinstance(e, OSError) and e.errno is not None and (not in_body or e.errno in _WRITE_ERRNOS):
            raise _write_error(path, e) from e
        raise
    _fsync_dir(path.parent)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _write_error(path: Path, err: OSError) -> OSError:
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        what = "the disk is full (no space left on device)"
    else:
        what = err.strerror or str(err)
    return type(err)(err.errno, f"cannot write {path}: {what}; the previous version of the file, if any, is "
                                f"unchanged and no partial file was left")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8, atomically. A file name that is not valid UTF-8 on disk (Python holds its
    odd bytes as surrogates, ``'caf\\udce9.jpg'``) is written back as those same bytes, so the line
    still names the file, instead of failing after the work that produced the text."""
    with atomic_write(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
