"""The rules every image visiontune reads is held to, and the reasons it gives when one breaks them.

* **regular files only** (:func:`open_regular`): opened with ``O_NONBLOCK`` and checked with ``fstat``
  on the descriptor that is then read, so a FIFO named ``pipe.jpg``, a device, a socket or a symbolic
  link to ``/dev/zero`` is refused at once (never blocks, never read forever), with no race between the
  check and the read;
* **a byte cap** (:data:`DEFAULT_MAX_BYTES`) before anything is read, and **a pixel cap**
  (:data:`DEFAULT_MAX_PIXELS`) from the header before any pixel is decoded;
* **raster formats only** (:data:`PIL_FORMATS`); anything else is named by its kind, never quoted.

Every failure is an :class:`ImageLoadError` naming the file and what to do about it. The decoding itself
is :func:`visiontune.imaging.decode.open_image`.

>>> _too_big(3 * 2**20, 2**20)
'file too large: 3.0 MiB, over the cap of 1 MiB for one image; shrink it with another tool first'
"""
from __future__ import annotations

import codecs
import errno
import os
import stat
import struct
import zlib
from typing import BinaryIO

from PIL import Image

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "PIL_FORMATS",
    "ImageLoadError",
    "open_regular",
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
