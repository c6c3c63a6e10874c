"""imaging.decode.open_image: a path and the same file as a PIL image decode to identical pixels, in
every mode; special files and non-raster formats are refused; the caller's image is left alone."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from visiontune.imaging.decode import open_image
from visiontune.imaging.limits import (
    PIL_FORMATS,
    ImageLoadError,
    open_regular,
    read_bytes,
)
from visiontune.imaging.probe import image_header, probe_image


def _make(tmp_path, name, mode, fmt):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (30, 40, 4), dtype=np.uint8)
    rgba = Image.fromarray(arr, "RGBA")
    im = {"RGBA": rgba, "RGB": rgba.convert("RGB"), "L": rgba.convert("L"), "P": rgba.convert("RGB").quantize(16),
          "LA": rgba.convert("LA"), "CMYK": rgba.convert("CMYK"), "I;16": rgba.convert("L").convert("I;16")}[mode]
    p = tmp_path / name
    im.save(p, fmt)
    return p


CASES = [("a.png", "RGBA", "PNG"), ("b.png", "L", "PNG"), ("c.png", "P", "PNG"), ("d.png", "LA", "PNG"),
         ("e.jpg", "RGB", "JPEG"), ("f.jpg", "CMYK", "JPEG"), ("g.tif", "I;16", "TIFF"), ("h.webp", "RGB", "WEBP"),
         ("i.bmp", "RGB", "BMP"), ("j.gif", "P", "GIF")]


@pytest.mark.parametrize("name,mode,fmt", CASES)
def test_path_and_pil_image_decode_to_identical_pixels(tmp_path, name, mode, fmt):
    p = _make(tmp_path, name, mode, fmt)
    want = open_image(p)
    assert want.mode == "RGB" and want.size == (40, 30)
    lazy = Image.open(p)
    loaded = Image.open(p)
    loaded.load()
    for im in (lazy, loaded):
        got = open_image(im)
        assert got.mode == "RGB" and got.tobytes() == want.tobytes(), (name, mode)


def test_caller_pixels_are_not_modified(tmp_path):
    im = Image.open(_make(tmp_path, "a.png", "RGBA", "PNG"))
    im.load()
    before = (im.mode, im.tobytes())
    open_image(im)
    assert (im.mode, im.tobytes()) == before


def test_draft_only_when_asked(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (800, 600), (10, 200, 30)).save(p)
    assert open_image(p).size == (800, 600)
    assert open_image(p, draft=100).size == (200, 150)  # 1/4 scale, both sides still >= 100


def test_directory_and_missing_file_reasons(tmp_path):
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageLoadError, match="is a directory, not an image file"):
        open_regular(tmp_path / "dir.jpg")
    assert probe_image(tmp_path / "gone.jpg").startswith("file not found")


def test_read_bytes_cap(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"x" * 100)
    assert read_bytes(p, max_bytes=100) == b"x" * 100
    with pytest.raises(ImageLoadError, match="file too large"):
        read_bytes(p, max_bytes=99)


def test_only_raster_formats_are_allowed():
    assert set(PIL_FORMATS) <= {"JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM"}
    assert "EPS" not in PIL_FORMATS and "PDF" not in PIL_FORMATS


def test_header_of_a_link_to_a_regular_file_is_read(tmp_path):
    p = _make(tmp_path, "a.png", "RGB", "PNG")
    os.symlink(p, tmp_path / "link.png")
    assert image_header(tmp_path / "link.png")["width"] == 40
