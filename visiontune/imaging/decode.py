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

Every failure is an :class:`ImageLoadError` naming the file and what to do about it. The caps, the formats,
the regular-file check and the reasons live in :mod:`visiontune.imaging.limits`; checking many files
without keeping their pixels in :mod:`visiontune.imaging.probe`; the aspect bound in
:mod:`visiontune.imaging.aspect`.

>>> import tempfile, pathlib
>>> from PIL import Image
>>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
>>> Image.new("L", (4, 3), 128).save(p)
>>> im = open_image(p)
>>> im.mode, im.size, im.getpixel((0, 0))
('RGB', (4, 3), (128, 128, 128))
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .limits import (
    _DECODE_ERRORS,
    _SUPPORTED,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    PIL_FORMATS,
    ImageLoadError,
    _bomb_reason,
    _check_pixels,
    _decode_reason,
    _sniff,
    open_regular,
)

__all__ = [
    "decode_bytes",
    "load_image",
    "open_image",
]


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
