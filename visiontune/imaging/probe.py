"""Checking image files without keeping their pixels: :func:`probe_image` (decode every byte, in bounded
memory), :func:`probe_images` (many files, in a thread pool, cached) and :func:`image_header` (the header
only). Each opens the file exactly as :func:`visiontune.imaging.decode.open_image` does.

>>> import tempfile, pathlib
>>> from PIL import Image
>>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
>>> Image.new("L", (4, 3), 128).save(p)
>>> probe_image(p) is None
True
"""
from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from .decode import _close, _open_file
from .limits import (
    _DECODE_ERRORS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    _bomb_reason,
    _decode_reason,
)

__all__ = [
    "PROBE_PIXEL_BUDGET",
    "default_io_workers",
    "image_header",
    "probe_image",
    "probe_images",
]

_PROBE_SIZE = 32  # draft target for probing: decodes every byte of a JPEG at 1/8 scale


# ---------------------------------------------------------------------------------------------
# probing: decode every byte, in bounded memory
# ---------------------------------------------------------------------------------------------
class _PixelBudget:
    """At most ``limit`` decoded pixels in flight across threads (one image is always let through)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.cond = threading.Condition()

    def __call__(self, n: int):
        budget = self

        class _Hold:
            def __enter__(self):
                with budget.cond:
                    while budget.used and budget.used + n > budget.limit:
                        budget.cond.wait()
                    budget.used += n

            def __exit__(self, *exc):
                with budget.cond:
                    budget.used -= n
                    budget.cond.notify_all()

        return _Hold()


PROBE_PIXEL_BUDGET = 48_000_000
"""Pixels decoded at once by :func:`probe_image` across all threads (~200 MB as RGBA): ten 64-megapixel
PNGs are checked one after the other, not side by side."""

_budget = _PixelBudget(PROBE_PIXEL_BUDGET)

_BIG_PIXELS = 4_000_000
_big_lock = threading.Lock()
_big: list = [None, None]  # (pid, executor): a forked child makes its own


def _big_decoder() -> ThreadPoolExecutor:
    """The one thread that decodes big images while probing. Freed pixel memory stays in the malloc arena
    of the thread that used it; decoded on 32 different threads, ten 64 MP PNGs kept ~750 MB resident,
    decoded on one, under 300 MB."""
    with _big_lock:
        if _big[0] != os.getpid():
            _big[:] = [os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="visiontune-big-decode")]
        return _big[1]


def probe_image(path, max_pixels: int | None = DEFAULT_MAX_PIXELS, max_bytes: int | None = DEFAULT_MAX_BYTES
                ) -> str | None:
    """Return why ``path`` cannot be used as an image, or ``None`` if it decodes.

    Every byte is decoded (so a truncated file is caught): JPEGs at 1/8 scale, other formats at full
    size but under a process-wide pixel budget (:data:`PROBE_PIXEL_BUDGET`), so that many threads
    probing huge PNGs stay within a few hundred MB. Nothing is converted or kept.
    """
    try:
        img = _open_file(path, max_pixels, max_bytes)
    except ImageLoadError as e:
        return e.reason
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        if img.format == "JPEG":
            img.draft("RGB", (_PROBE_SIZE, _PROBE_SIZE))
        w, h = img.size
        with _budget(w * h):
            try:
                if w * h >= _BIG_PIXELS:  # one thread for big decodes: the allocator reuses one arena
                    _big_decoder().submit(img.load).result()
                else:
                    img.load()
            finally:
                _close(img)  # the pixels are freed before the budget is handed on
        return None
    except Image.DecompressionBombError as e:
        return _bomb_reason(e)
    except MemoryError:
        return "out of memory while decoding (lower max_pixels?)"
    except _DECODE_ERRORS as e:
        return _decode_reason(e)
    finally:
        _close(img)


_probe_cache: dict[tuple, str | None] = {}
_probe_lock = threading.Lock()
_PROBE_CACHE_MAX = 2_000_000


def _cached_probe(path: str, max_pixels: int | None) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return probe_image(path, max_pixels)  # gives the right reason (missing, loop, permission)
    key = (path, st.st_size, st.st_mtime_ns, max_pixels)
    with _probe_lock:
        if key in _probe_cache:
            return _probe_cache[key]
    reason = probe_image(path, max_pixels)
    if stat.S_ISREG(st.st_mode) and (reason is None or not reason.startswith("permission denied")):
        with _probe_lock:
            if len(_probe_cache) >= _PROBE_CACHE_MAX:
                _probe_cache.clear()
            _probe_cache[key] = reason
    return reason


def default_io_workers() -> int:
    """Threads for parallel file work (decoding releases the GIL)."""
    return min(32, 4 * (os.cpu_count() or 1))


def probe_images(paths: Sequence | Iterable, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 max_workers: int | None = None) -> list[str | None]:
    """:func:`probe_image` for many files, in a thread pool; results are cached in memory.

    The cache key is (absolute path, size, mtime_ns, max_pixels), so an edited file is probed again.
    Returns one entry per path, in order: ``None`` (fine) or the reason it is unreadable.
    """
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    if not paths:
        return []
    workers = max_workers or default_io_workers()
    if workers <= 1 or len(paths) < 4:
        return [_cached_probe(p, max_pixels) for p in paths]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(lambda p: _cached_probe(p, max_pixels), paths, chunksize=8))


def image_header(path, max_bytes: int | None = DEFAULT_MAX_BYTES) -> dict:
    """Read only the header: ``{"format", "mode", "width", "height", "n_frames"}`` (no pixel decoding).

    Raises :class:`ImageLoadError` if the file cannot be opened as an image. No pixel cap is applied
    here, so an over-size header can still be reported.
    """
    img = _open_file(path, None, max_bytes)
    try:
        return {"format": img.format, "mode": img.mode, "width": img.size[0], "height": img.size[1],
                "n_frames": getattr(img, "n_frames", 1)}
    except _DECODE_ERRORS as e:
        raise ImageLoadError(path, f"corrupt header ({type(e).__name__}: {e})") from e
    finally:
        _close(img)
