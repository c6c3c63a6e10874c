"""The zoo of bad inputs, generated at test time (nothing binary is committed).

Each ``make_*`` writes one file and returns its path. :data:`IMAGE_ZOO` maps a case name to
``(maker, expected)``: ``expected`` is ``None`` for files visiontune must decode, or a substring of
the reason it must give for refusing the file.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _noise(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def solid(color, size=(64, 64), noise: int = 6, seed: int = 0) -> Image.Image:
    arr = np.empty((size[1], size[0], 3), np.int64)
    arr[:] = color
    rng = np.random.default_rng(seed)
    arr += rng.integers(-noise, noise + 1, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_bytes(size=(96, 80), seed: int = 0, progressive: bool = False) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise(*size, seed=seed)).save(buf, format="JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _save(path: Path, im: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)
    return path


# ---- unreadable ---------------------------------------------------------------------------------
def make_truncated_jpeg(path: Path) -> Path:
    """Only the headers and the first few bytes of the scan: the download was cut short."""
    data = jpeg_bytes()
    sos = data.index(b"\xff\xda")
    return _write(path, data[: sos + 40])


def make_midscan_jpeg(path: Path) -> Path:
    """Cut off half way through the entropy-coded scan (no EOI marker)."""
    data = jpeg_bytes(size=(128, 128), seed=1)
    sos = data.index(b"\xff\xda")
    return _write(path, data[: sos + (len(data) - sos) // 2])


def make_zero_byte(path: Path) -> Path:
    return _write(path, b"")


def make_html_as_jpg(path: Path) -> Path:
    return _write(path, b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>nope</body></html>\n")


def make_text_as_jpg(path: Path) -> Path:
    return _write(path, b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n")


def make_bomb_header(path: Path, w: int = 50_000, h: int = 50_000) -> Path:
    """A valid-looking 1 KB PNG whose header claims ``w`` x ``h`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return _write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# ---- readable but unusual -----------------------------------------------------------------------
def make_png(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 2)), format="PNG")


def make_gif(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 3)).convert("P"), format="GIF")


def make_animated_gif(path: Path) -> Path:
    frames = [solid(c, (40, 30)).convert("P") for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def make_webp(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 4)), format="WEBP")


def make_tiff(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 5)), format="TIFF")


def make_bmp(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 6)), format="BMP")


def make_cmyk_jpeg(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 7)).convert("CMYK"), format="JPEG", quality=90)


def make_png16(path: Path) -> Path:
    arr = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    return _save(path, Image.fromarray(arr), format="PNG")


def make_gray(path: Path) -> Path:
    return _save(path, Image.fromarray(_noise(40, 30, 8)[..., 0], "L"), format="JPEG")


def make_palette_transparent(path: Path) -> Path:
    im = Image.new("P", (40, 30), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (10, 10, 30, 20))
    im.info["transparency"] = 0
    return _save(path, im, format="PNG", transparency=0)


def make_exif_rotated(path: Path) -> Path:
    """Stored 60 wide x 30 high with EXIF orientation 6 (rotate 90 CW): displayed 30 x 60."""
    im = solid((200, 30, 30), (60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(path, im, format="JPEG", exif=exif.tobytes())


def make_1x1(path: Path) -> Path:
    return _save(path, Image.new("RGB", (1, 1), (10, 200, 10)), format="PNG")


IMAGE_ZOO = {
    # name: (maker, file name, expected reason substring or None when it must decode)
    "truncated_jpeg": (make_truncated_jpeg, "truncated.jpg", "truncated"),
    "midscan_jpeg": (make_midscan_jpeg, "midscan.jpg", "truncated"),
    "zero_byte": (make_zero_byte, "empty.jpg", "empty file (0 bytes)"),
    "html_as_jpg": (make_html_as_jpg, "page.jpg", "HTML"),
    "text_as_jpg": (make_text_as_jpg, "lfs-pointer.jpg", "the file holds text"),
    "bomb_header": (make_bomb_header, "bomb.png", "too many pixels"),
    "png": (make_png, "plain.png", None),
    "gif": (make_gif, "plain.gif", None),
    "animated_gif": (make_animated_gif, "animated.gif", None),
    "webp": (make_webp, "plain.webp", None),
    "tiff": (make_tiff, "plain.tiff", None),
    "bmp": (make_bmp, "plain.bmp", None),
    "cmyk_jpeg": (make_cmyk_jpeg, "cmyk.jpg", None),
    "png16": (make_png16, "sixteen.png", None),
    "gray": (make_gray, "gray.jpg", None),
    "palette_transparent": (make_palette_transparent, "palette.png", None),
    "exif_rotated": (make_exif_rotated, "rotated.jpg", None),
    "one_pixel": (make_1x1, "dot.png", None),
}
BAD_CASES = {k: v for k, v in IMAGE_ZOO.items() if v[2] is not None}
GOOD_CASES = {k: v for k, v in IMAGE_ZOO.items() if v[2] is None}


# ---- datasets ----------------------------------------------------------------------------------
CLASS_COLORS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def make_class_images(folder: Path, color, n: int, size=(48, 40), seed: int = 0, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"{prefix}{i}.jpg"
        solid(color, size, noise=20, seed=seed + i).save(p, quality=90)
        out.append(p)
    return out


def make_zoo_folder(root: Path, n_good: int = 4) -> dict[str, str]:
    """``root/train/{red,blue}`` and ``root/valid/{red,blue}`` with good JPEGs, and every zoo case
    under ``train/red`` (relative path -> expected reason or None). Returns the zoo cases placed."""
    for split, seed in (("train", 0), ("valid", 100)):
        for c, col in CLASS_COLORS.items():
            make_class_images(root / split / c, col, n_good, seed=seed)
    placed = {}
    for name, (maker, fname, expected) in IMAGE_ZOO.items():
        maker(root / "train" / "red" / fname)
        placed[f"train/red/{fname}"] = expected
    return placed


def spy_opens(monkeypatch, resolve=os.path.abspath) -> list[str]:
    """Record (``resolve``d) every path given to ``open``, ``os.open`` and ``PIL.Image.open`` from now on."""
    opened: list[str] = []
    real_open, real_pil = open, Image.open

    def spy_open(file, *a, **k):
        if isinstance(file, (str, os.PathLike)):
            opened.append(resolve(os.fspath(file)))
        return real_open(file, *a, **k)

    def spy_pil(fp, *a, **k):
        if isinstance(fp, (str, os.PathLike)):
            opened.append(resolve(os.fspath(fp)))
        return real_pil(fp, *a, **k)

    real_os_open = os.open

    def spy_os_open(file, *a, **k):  # the decode path opens files with os.open (O_NONBLOCK, then fstat)
        if isinstance(file, (str, os.PathLike)):
            opened.append(resolve(os.fspath(file)))
        return real_os_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy_open)
    monkeypatch.setattr(Image, "open", spy_pil)
    monkeypatch.setattr(os, "open", spy_os_open)
    return opened
