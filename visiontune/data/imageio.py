"""Image decoding that survives real data.

:func:`load_image` turns any file PIL can read into an RGB ``PIL.Image``:

* the pixel count is checked from the header *before* any pixel is decoded, so a
  decompression bomb (a tiny file claiming 50,000 x 50,000 pixels) is refused at once;
* big JPEGs are decoded in reduced-size (draft) mode when the caller only needs a small image;
* EXIF orientation is applied;
* every mode becomes RGB: ``L``/``1``/``CMYK``/``YCbCr`` convert directly, anything with an alpha
  channel or palette transparency (``LA``, ``RGBA``, ``PA``, ``P`` + transparency) is composited on
  white, 16-bit and 32-bit integer images (``I;16``, ``I``) are scaled to 8 bits, float images (``F``)
  are clipped;
* animated GIF/WebP/TIFF files give their first frame;
* only the raster formats of :data:`IMAGE_EXTENSIONS` (:data:`PIL_FORMATS`) are opened, whatever the
  file's name: a PostScript/EPS or PDF file renamed ``.jpg`` is refused as "not an image" and never
  handed to PIL's Ghostscript plugin.

Every failure is an :class:`ImageLoadError` naming the file and what to do about it.
:func:`probe_image` fully decodes a file (quickly, in draft mode) and returns the reason it is
unreadable, or ``None``; :func:`probe_images` does that for many files in parallel and remembers the
answers (keyed by path, size and modification time).

>>> import tempfile, pathlib
>>> from PIL import Image
>>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
>>> Image.new("L", (4, 3), 128).save(p)
>>> im = load_image(p)
>>> im.mode, im.size, im.getpixel((0, 0))
('RGB', (4, 3), (128, 128, 128))
>>> probe_image(p) is None
True
"""
from __future__ import annotations

import codecs
import errno
import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "PIL_FORMATS",
    "ImageLoadError",
    "load_image",
    "probe_image",
    "probe_images",
    "image_header",
]

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width x height) :func:`load_image` decodes by default: 64 megapixels (~190 MB as RGB)."""

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


def _open_error_reason(path: Path, err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "file not found (deleted or moved since the file list was made?)"
    if isinstance(err, PermissionError):
        return "permission denied (check the file's read permission)"
    if isinstance(err, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(err, OSError) and err.errno == errno.ELOOP:
        return "symbolic link loop (the link points back to itself)"
    if isinstance(err, Image.DecompressionBombError):
        return _bomb_reason(err)
    if isinstance(err, UnidentifiedImageError):
        return _sniff_not_image(path)
    return f"{type(err).__name__}: {err}"


_SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF, WebP or PPM/PGM/PBM"


def _sniff_not_image(path: Path) -> str:
    """Why a file PIL would not open is not an image: the kind of file it is, never its contents
    (a reason is printed and saved; quoting the first bytes of e.g. a linked /etc/passwd would leak them)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:  # pragma: no cover - races with deletion
        return f"{type(e).__name__}: {e}"
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


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    try:
        img = Image.open(path, formats=PIL_FORMATS)  # lazy: reads the header only
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError) as e:
        raise ImageLoadError(path, _open_error_reason(path, e)) from e
    except _DECODE_ERRORS as e:
        raise ImageLoadError(path, f"corrupt header ({type(e).__name__}: {e})") from e
    try:
        _check_pixels(path, img, max_pixels)
    except ImageLoadError:
        img.close()
        raise
    return img


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
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "RGBX"):
        return img.convert("RGB")
    return img.convert("RGB")  # LAB, HSV, ...: let PIL try; a failure becomes an ImageLoadError


def load_image(path, target_size: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` into an RGB ``PIL.Image`` (EXIF orientation applied).

    Args:
        path: the image file.
        target_size: the smallest side length the caller needs. JPEGs at least twice that size in
            both dimensions are decoded in draft mode (libjpeg's 1/2, 1/4 or 1/8 scaling), which is
            several times faster; the result still has both sides >= ``target_size``.
            ``None`` decodes at full size.
        max_pixels: refuse images whose header claims more than this many pixels (width x height),
            before decoding anything. ``None`` disables the cap (PIL's own bomb guard still applies).

    Raises:
        ImageLoadError: the file is missing, unreadable, not an image, truncated, or too large.
    """
    path = Path(path)
    src = img = _open(path, max_pixels)
    try:
        try:
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if target_size and img.format == "JPEG":
                t = int(target_size)
                img.draft("RGB", (t, t))
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except _DECODE_ERRORS:  # a broken EXIF block must not lose the picture
                pass
            out = _to_rgb(img)
            if out is src:
                out = src.copy()  # detach from the file handle
            return out
        except ImageLoadError:
            raise
        except Image.DecompressionBombError as e:
            raise ImageLoadError(path, _bomb_reason(e)) from e
        except MemoryError as e:
            raise ImageLoadError(path, "out of memory while decoding (lower max_pixels?)") from e
        except _DECODE_ERRORS as e:
            msg = str(e) or type(e).__name__
            if "truncated" in msg:
                reason = f"truncated or damaged file ({msg}); the download or copy was probably cut short"
            else:
                reason = f"cannot decode ({type(e).__name__}: {msg})"
            raise ImageLoadError(path, reason) from e
    finally:
        src.close()


def probe_image(path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> str | None:
    """Return why ``path`` cannot be used as an image, or ``None`` if it decodes.

    The whole file is decoded (so a truncated JPEG is caught), in draft mode for speed.
    """
    try:
        load_image(path, target_size=_PROBE_SIZE, max_pixels=max_pixels)
    except ImageLoadError as e:
        return e.reason
    return None


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
    if reason is None or not reason.startswith("permission denied"):
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


def image_header(path) -> dict:
    """Read only the header: ``{"format", "mode", "width", "height", "n_frames"}`` (no pixel decoding).

    Raises :class:`ImageLoadError` if the file cannot be opened as an image. No pixel cap is applied
    here, so an over-size header can still be reported.
    """
    path = Path(path)
    try:
        with Image.open(path, formats=PIL_FORMATS) as img:
            return {
                "format": img.format,
                "mode": img.mode,
                "width": img.size[0],
                "height": img.size[1],
                "n_frames": getattr(img, "n_frames", 1),
            }
    except (UnidentifiedImageError, OSError) as e:
        raise ImageLoadError(path, _open_error_reason(path, e)) from e
    except Image.DecompressionBombError as e:
        raise ImageLoadError(path, _open_error_reason(path, e)) from e
    except _DECODE_ERRORS as e:
        raise ImageLoadError(path, f"corrupt header ({type(e).__name__}: {e})") from e


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
