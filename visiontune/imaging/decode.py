"""The one decode path: every image visiontune reads goes through :func:`open_image`.

Training datasets, the validation and test sets, ``ExportedModel.predict_images`` (paths and PIL
images), ``visiontune predict`` / ``submit`` / ``inspect``, the report's thumbnails and the Python API
all decode here, under the same rules:

* **regular files only.** The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the
  descriptor that is then read, so a FIFO named ``pipe.jpg``, a device, a socket or a symbolic link
  to ``/dev/zero`` is refused at once (never blocks, never read forever), with no race between the
  check and the read;
* **a byte cap** (:data:`DEFAULT_MAX_BYTES`) before anything is read, and **a pixel cap**
  (:data:`DEFAULT_MAX_PIXELS`) from the header before any pixel is decoded (a decompression bomb, a
  tiny file claiming 50,000 x 50,000 pixels, is refused at once);
* **raster formats only** (:data:`PIL_FORMATS`: JPEG, PNG, GIF, BMP, TIFF, WebP, PPM), whatever the
  file's name. PostScript/EPS, PDF and every other format are refused as "not an image" before a
  Pillow plugin runs: Pillow never calls Ghostscript. A PIL image passed in (the Python API) is held to
  the same rule: an ``EpsImageFile`` not yet decoded is refused, not loaded;
* EXIF orientation is applied, every mode becomes RGB (alpha composited on white, 16-bit scaled,
  float clipped), animated files give their first frame.

A path and the same file opened with ``PIL.Image.open`` decode to identical pixels. Decoding at full
size is the default; ``draft=N`` lets libjpeg decode a big JPEG at 1/2, 1/4 or 1/8 scale (both sides
kept >= N), which only the random training views use (speed, where exact pixels do not matter).

Every failure is an :class:`ImageLoadError` naming the file and what to do about it.

>>> import tempfile, pathlib
>>> from PIL import Image
>>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
>>> Image.new("L", (4, 3), 128).save(p)
>>> im = open_image(p)
>>> im.mode, im.size, im.getpixel((0, 0))
('RGB', (4, 3), (128, 128, 128))
>>> probe_image(p) is None
True
"""
from __future__ import annotations

import codecs
import errno
import io
import os
import stat
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_ASPECT",
    "PIL_FORMATS",
    "ImageLoadError",
    "aspect_box",
    "default_io_workers",
    "image_header",
    "limit_aspect",
    "load_image",
    "open_image",
    "open_regular",
    "probe_image",
    "probe_images",
    "read_bytes",
]

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width x height) decoded by default: 64 megapixels (~190 MB as RGB)."""

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""Largest image file read by default: 512 MiB (a 64-megapixel 16-bit RGBA TIFF, uncompressed, fits)."""

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
)
"""Suffixes (lower case) treated as images when a folder is listed."""

Image.init()
PIL_FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM") if f in Image.OPEN)
"""The PIL formats (decoders) files are opened with, whatever their contents claim: the raster formats
of :data:`IMAGE_EXTENSIONS`. Others (EPS/PS and PDF, which PIL would hand to Ghostscript; SVG, ICO, ...)
are refused as not an image."""

_PROBE_SIZE = 32  # draft target for probing: decodes every byte of a JPEG at 1/8 scale

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, zlib.error, TypeError)

_SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF, WebP or PPM/PGM/PBM"


class ImageLoadError(Exception):
    """An image file that cannot be used, with the reason and what to do.

    ``path`` and ``reason`` are kept as attributes for programs; ``str(err)`` is for people.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot load image {self.path}: {reason}. "
            "Replace or delete the file, or build the data without strict=True to skip unreadable files."
        )

    def __reduce__(self):  # keep the two-argument constructor picklable (DataLoader workers re-raise it)
        return (type(self), (self.path, self.reason))


# ---------------------------------------------------------------------------------------------
# regular files only, with a byte cap
# ---------------------------------------------------------------------------------------------
def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    if stat.S_ISFIFO(mode):
        return "not a regular file: a named pipe (FIFO); only regular files are read"
    if stat.S_ISCHR(mode):
        return "not a regular file: a character device (such as /dev/zero, perhaps through a symbolic link); " \
               "only regular files are read"
    if stat.S_ISBLK(mode):
        return "not a regular file: a block device; only regular files are read"
    if stat.S_ISSOCK(mode):
        return "not a regular file: a socket; only regular files are read"
    return "not a regular file; only regular files are read"


def _os_reason(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "file not found (deleted or moved since the file list was made?)"
    if isinstance(err, PermissionError):
        return "permission denied (check the file's read permission)"
    if isinstance(err, IsADirectoryError):
        return "is a directory, not an image file"
    if err.errno == errno.ELOOP:
        return "symbolic link loop (the link points back to itself)"
    if err.errno == errno.ENXIO:  # a socket, or a FIFO with no reader on some systems
        return "not a regular file (a socket or a device); only regular files are read"
    return f"{type(err).__name__}: {err.strerror or err}"


def _too_big(size: int, max_bytes: int) -> str:
    return (f"file too large: {size / 2**20:.1f} MiB, over the cap of {max_bytes / 2**20:.0f} MiB for one image; "
            "shrink it with another tool first")


def open_regular(path, max_bytes: int | None = DEFAULT_MAX_BYTES) -> BinaryIO:
    """Open ``path`` for binary reading if, and only if, it is a regular file of at most ``max_bytes``.

    Symbolic links are followed, but the file they lead to must be regular: the check is ``fstat`` on
    the very descriptor that is returned, opened with ``O_NONBLOCK`` so that a FIFO never blocks.
    Raises :class:`ImageLoadError` with the reason (missing, not a regular file, too large ...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ImageLoadError(path, _os_reason(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(path, _kind_of(st.st_mode))
        if max_bytes is not None and st.st_size > max_bytes:
            raise ImageLoadError(path, _too_big(st.st_size, max_bytes))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, max_bytes: int | None = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`open_regular`)."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1 if max_bytes is not None else -1)
    if max_bytes is not None and len(data) > max_bytes:  # grew after the check
        raise ImageLoadError(path, _too_big(len(data), max_bytes))
    return data


# ---------------------------------------------------------------------------------------------
# reasons
# ---------------------------------------------------------------------------------------------
def _sniff(head: bytes, size: int) -> str:
    """Why bytes PIL would not open are not an image: the kind of file, never its contents
    (a reason is printed and saved; quoting the first bytes of e.g. a linked /etc/passwd would leak them)."""
    if size == 0:
        return "empty file (0 bytes)"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"%!ps", b"\xc5\xd0\xd3\xc6")):
        return (f"not an image: the file is a PostScript/EPS document (vector graphics; only {_SUPPORTED} "
                "images are read)")
    if stripped.startswith(b"%pdf"):
        return f"not an image: the file is a PDF document (only {_SUPPORTED} images are read)"
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped):
        return f"not an image: the file is an SVG drawing (vector graphics; only {_SUPPORTED} images are read)"
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "not an image: the file holds HTML/XML text (a saved web page or an error page?)"
    if stripped.startswith(b"version https://git-lfs"):
        return "not an image: the file holds text, a Git LFS pointer (run `git lfs pull` to fetch the real file)"
    try:  # final=False: a multi-byte character cut at the end of the bytes read is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=size <= len(head))
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "not an image: the file holds text (a text, CSV or config file saved under an image name?)"
    return f"not a recognised image format (unknown or corrupt header; {_SUPPORTED} files are read)"


def _bomb_reason(err: BaseException) -> str:
    return (f"too many pixels: PIL refused it as a possible decompression bomb ({err}); "
            "if the file is genuine, shrink it with another tool first")


def _check_pixels(path, img: Image.Image, max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    w, h = img.size
    if w * h > max_pixels:
        raise ImageLoadError(
            path,
            f"too many pixels: the header claims {w}x{h} = {w * h / 1e6:.1f} megapixels, over the cap of "
            f"{max_pixels / 1e6:.1f} megapixels (decompression-bomb guard); if the file is genuine, "
            f"pass a larger max_pixels or shrink it first",
        )


def _decode_reason(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if "truncated" in msg:
        return f"truncated or damaged file ({msg}); the download or copy was probably cut short"
    return f"cannot decode ({type(e).__name__}: {msg})"


# ---------------------------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------------------------
def _open_file(path, max_pixels: int | None, max_bytes: int | None) -> Image.Image:
    """A lazily decoded image over a regular file, opened with the raster decoders only (header read)."""
    f = open_regular(path, max_bytes)
    try:
        try:
            img = Image.open(f, formats=PIL_FORMATS)
        except UnidentifiedImageError as e:
            f.seek(0)
            raise ImageLoadError(path, _sniff(f.read(256), os.fstat(f.fileno()).st_size)) from e
        except Image.DecompressionBombError as e:
            raise ImageLoadError(path, _bomb_reason(e)) from e
        except _DECODE_ERRORS as e:
            raise ImageLoadError(path, f"corrupt header ({type(e).__name__}: {e})") from e
        _check_pixels(path, img, max_pixels)
    except BaseException:
        f.close()
        raise
    img._vt_file = f  # closed by _close once decoded
    return img


def _close(img: Image.Image) -> None:
    f = getattr(img, "_vt_file", None)
    try:
        img.close()
    finally:
        if f is not None:
            f.close()


def _check_pil_format(name: str, img: Image.Image) -> None:
    """A PIL image from the caller: refused when it is a file of a non-raster format not decoded yet
    (loading it would run that plugin: Ghostscript for EPS)."""
    fmt = getattr(img, "format", None)
    if fmt and fmt not in PIL_FORMATS and isinstance(img, ImageFile.ImageFile):
        raise ImageLoadError(name, f"not an image: the PIL image is in {fmt} format, not a raster image (only "
                                   f"{_SUPPORTED} images are read; decoding {fmt} could run an outside program "
                                   "such as Ghostscript)")


def _pil_name(img: Image.Image) -> str:
    return str(getattr(img, "filename", "") or "<PIL image>")


# ---------------------------------------------------------------------------------------------
# to RGB
# ---------------------------------------------------------------------------------------------
def _sixteen_bit_to_8(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        a = arr.astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:  # float images in [0, 1]
            a = a * 255.0
        out = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    elif img.mode.startswith("I;16"):
        out = (arr.astype(np.uint32) * 255 + 32767) // 65535  # full 16-bit range -> 0..255
        out = out.astype(np.uint8)
    else:  # "I": 32-bit signed; PIL stores 16-bit greyscale PNGs this way too
        a = arr.astype(np.int64)
        if a.size and (a.max() > 255 or a.min() < 0):
            a = (np.clip(a, 0, 65535) * 255 + 32767) // 65535
        out = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L").convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _sixteen_bit_to_8(img)
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGBX, LAB, HSV ...: a failure becomes an ImageLoadError


def _finish(name, img: Image.Image, draft: int | None) -> Image.Image:
    """Decode (first frame, optional JPEG draft), apply EXIF orientation, convert to RGB; never returns
    ``img`` itself when it is file-backed (the result is detached from any file handle)."""
    src = img
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        if draft and img.format == "JPEG":
            img.draft("RGB", (int(draft), int(draft)))
        img.load()
        try:
            img = ImageOps.exif_transpose(img)
        except _DECODE_ERRORS:  # a broken EXIF block must not lose the picture
            pass
        out = _to_rgb(img)
        if out is src:
            out = src.copy()
        return out
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, _bomb_reason(e)) from e
    except MemoryError as e:
        raise ImageLoadError(name, "out of memory while decoding (lower max_pixels?)") from e
    except _DECODE_ERRORS as e:
        raise ImageLoadError(name, _decode_reason(e)) from e


def open_image(source, draft: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> Image.Image:
    """Decode a path or a PIL image into an RGB ``PIL.Image`` (EXIF orientation applied).

    Args:
        source: a path (``str`` / ``os.PathLike``) or a ``PIL.Image.Image``. A path and the same file
            opened with ``PIL.Image.open`` (decoded or not) give identical pixels. The caller's pixels are
            never modified (a multi-frame image is set to its first frame, which is the one used).
        draft: ``None`` (default) decodes at full size. An int lets a JPEG at least twice that size
            in both dimensions decode at 1/2, 1/4 or 1/8 scale (both sides stay >= ``draft``):
            several times faster, slightly different pixels. Only random training views use it.
        max_pixels: refuse images whose header claims more pixels (width x height); ``None``: no cap
            (PIL's own bomb guard still applies).
        max_bytes: refuse files larger than this; ``None``: no cap.

    Raises:
        ImageLoadError: missing, not a regular file, too large, not a raster image, truncated ...
    """
    if isinstance(source, Image.Image):
        name = _pil_name(source)
        _check_pil_format(name, source)
        _check_pixels(name, source, max_pixels)
        return _finish(name, source, None)  # never drafted: a path decodes at full size too
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise TypeError(f"expected a path or a PIL image, got {type(source).__name__}")
    img = _open_file(source, max_pixels, max_bytes)
    try:
        return _finish(source, img, draft)
    finally:
        _close(img)


def load_image(path, target_size: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """:func:`open_image` under its earlier name: ``target_size`` is the ``draft`` side."""
    return open_image(path, draft=target_size, max_pixels=max_pixels)


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


def decode_bytes(data: bytes, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """:func:`open_image` for bytes already read (raster formats only, pixel cap, EXIF, RGB)."""
    try:
        img = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except UnidentifiedImageError as e:
        raise ImageLoadError(name, _sniff(data[:256], len(data))) from e
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, _bomb_reason(e)) from e
    except _DECODE_ERRORS as e:
        raise ImageLoadError(name, f"corrupt header ({type(e).__name__}: {e})") from e
    try:
        _check_pixels(name, img, max_pixels)
        return _finish(name, img, None)
    finally:
        img.close()


# ---------------------------------------------------------------------------------------------
# aspect bound (before a short-side resize)
# ---------------------------------------------------------------------------------------------
MAX_ASPECT = 8
"""Before an image is resized by its short side (training transforms, an exported model's views), a
source whose long side is over ``MAX_ASPECT`` times its short side is cut to its central
``MAX_ASPECT : 1`` part (see :func:`limit_aspect`)."""


def limit_aspect(img: Image.Image, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """``img`` itself if its long side is at most ``max_aspect`` times its short side; else its centre,
    the long side cut to ``max(1, floor(short * max_aspect))`` pixels.

    Scaling the short side of a 1 x 30,000 PNG (204 bytes) to 224 would make a 224 x 6,720,000 image
    (4.5 GB) that the pixel cap never sees; cut first, it stays under ``target x (max_aspect * target)``.
    Only the centre survives the crops that follow. Ordinary images are passed through untouched.

    >>> limit_aspect(Image.new("RGB", (1, 30000))).size, limit_aspect(Image.new("RGB", (300, 200))).size
    ((1, 8), (300, 200))
    """
    box = aspect_box(*img.size, max_aspect)
    return img if box is None else img.crop(box)


def aspect_box(w: int, h: int, max_aspect: float = MAX_ASPECT) -> tuple[int, int, int, int] | None:
    """The central ``(left, top, right, bottom)`` box of a ``w x h`` image whose long side is cut to
    ``max(1, floor(short * max_aspect))`` pixels; ``None`` when the image is within ``max_aspect``.

    >>> aspect_box(30000, 2), aspect_box(300, 200)
    ((14992, 0, 15008, 2), None)
    """
    short, long = min(w, h), max(w, h)
    if long <= short * max_aspect:
        return None
    keep = max(1, int(short * max_aspect))
    start = (long - keep) // 2
    return (start, 0, start + keep, h) if w > h else (0, start, w, start + keep)
