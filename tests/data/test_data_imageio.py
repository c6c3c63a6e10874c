"""load_image / probe_image: every mode to RGB, EXIF, draft mode, pixel cap, broken files."""
from __future__ import annotations

import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from vt_data_helpers import jpeg_bytes, save_jpeg

from visiontune.data import ImageLoadError, load_image, probe_image, probe_images


def _px(img, xy=(0, 0)):
    return img.getpixel(xy)


def test_grey_L(tmp_path):
    p = tmp_path / "l.png"
    Image.new("L", (8, 6), 77).save(p)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (8, 6) and _px(im) == (77, 77, 77)


def test_one_bit(tmp_path):
    p = tmp_path / "b.png"
    Image.new("1", (5, 5), 1).save(p)
    assert _px(load_image(p)) == (255, 255, 255)


def test_LA_composited_on_white(tmp_path):
    p = tmp_path / "la.png"
    im = Image.new("LA", (4, 2), (0, 255))
    im.putpixel((1, 0), (0, 0))  # fully transparent black -> white
    im.save(p)
    out = load_image(p)
    assert _px(out, (0, 0)) == (0, 0, 0)
    assert _px(out, (1, 0)) == (255, 255, 255)


def test_RGBA_composited_on_white(tmp_path):
    p = tmp_path / "rgba.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 128)).save(p)
    r, g, b = _px(load_image(p))
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "p.png"
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 255, 10, 200, 10] + [0] * (256 * 3 - 6))
    im.putpixel((2, 2), 1)
    im.info["transparency"] = 0  # index 0 (blue) is transparent
    im.save(p, transparency=0)
    out = load_image(p)
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (2, 2)) == (10, 200, 10)


def test_palette_gif_and_first_frame_of_animation(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 6), (255, 0, 0)), Image.new("RGB", (6, 6), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = load_image(p)
    assert out.mode == "RGB" and _px(out) == (255, 0, 0)


def test_cmyk(tmp_path):
    p = tmp_path / "cmyk.tif"
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    assert _px(load_image(p)) == (255, 0, 0)
    pj = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(pj, quality=95)
    r, g, b = _px(load_image(pj), (8, 8))
    assert r > 230 and g < 30 and b < 30


def test_sixteen_bit_png_scaled_to_8_bit(tmp_path):
    p = tmp_path / "i16.png"
    arr = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    out = load_image(p)
    assert [_px(out, (x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_float_image(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.full((3, 3), 0.5, np.float32), "F").save(p)
    assert _px(load_image(p)) == (128, 128, 128)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    arr[:, 20:] = (0, 0, 255)  # right half blue
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.size == (20, 40)  # portrait after rotation
    top, bottom = np.asarray(out)[2, 10], np.asarray(out)[-3, 10]
    assert top[0] > 200 and top[2] < 60  # the left (red) edge is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_one_by_one(tmp_path):
    p = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(p)
    out = load_image(p, target_size=224)
    assert out.size == (1, 1) and _px(out) == (1, 2, 3)


def test_draft_mode_for_big_jpegs(tmp_path):
    p = save_jpeg(tmp_path / "big.jpg", size=(1600, 1200), color=(90, 100, 110))
    out = load_image(p, target_size=100)
    assert min(out.size) >= 100 and out.size[0] <= 400  # decoded at 1/4 or 1/8 scale
    assert load_image(p).size == (1600, 1200)


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_decompression_bomb_header_refused_fast(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(50_000, 50_000))
    t = time.perf_counter()
    with pytest.raises(ImageLoadError) as ei:
        load_image(p)
    assert time.perf_counter() - t < 1.0
    msg = str(ei.value)
    assert "bomb.png" in msg and "too many pixels" in msg
    assert "decompression" in msg
    assert "too many pixels" in probe_image(p)


def test_pixel_cap_is_configurable(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(p)
    with pytest.raises(ImageLoadError, match=r"too many pixels: the header claims 100x100"):
        load_image(p, max_pixels=5000)
    assert load_image(p, max_pixels=10_000).size == (100, 100)
    assert load_image(p, max_pixels=None).size == (100, 100)


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("zero.jpg", b"", "empty file"),
        ("text.jpg", b"this is not a picture\nreally\n", "holds text"),
        ("page.jpg", b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        ("junk.jpg", bytes(range(256)) * 4, "not a recognised image format"),
    ],
)
def test_not_images(tmp_path, name, content, expect):
    p = tmp_path / name
    p.write_bytes(content)
    assert expect in probe_image(p)
    with pytest.raises(ImageLoadError) as ei:
        load_image(p)
    assert name in str(ei.value) and expect in str(ei.value)
    assert ei.value.path == str(p) and expect in ei.value.reason


def test_truncated_jpeg_found_by_probe(tmp_path):
    data = jpeg_bytes((64, 48))
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 2])
    reason = probe_image(p)
    assert reason is not None and "truncated" in reason


def test_missing_loop_directory(tmp_path):
    assert "file not found" in probe_image(tmp_path / "gone.jpg")
    loop = tmp_path / "loop.jpg"
    os.symlink(loop, loop)
    assert "symbolic link loop" in probe_image(loop)
    (tmp_path / "dir.jpg").mkdir()
    assert "directory" in probe_image(tmp_path / "dir.jpg")


def test_probe_images_parallel_and_cached(tmp_path):
    good = [tmp_path / f"g{i}.jpg" for i in range(10)]
    for i, g in enumerate(good):
        g.write_bytes(jpeg_bytes(seed=i))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    res = probe_images(good + [bad])
    assert res[:10] == [None] * 10 and "empty" in res[10]
    assert probe_images(good + [bad]) == res  # cached
    bad.write_bytes(jpeg_bytes())  # fixed: new size/mtime, so probed again
    assert probe_images([bad]) == [None]


def test_image_load_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(ImageLoadError("a.jpg", "broken")))
    assert e.path == "a.jpg" and e.reason == "broken" and "a.jpg" in str(e)


def test_jpeg_bytes_roundtrip_sanity():
    im = Image.open(io.BytesIO(jpeg_bytes((10, 8))))
    assert im.size == (10, 8)


def test_permission_denied_reason(tmp_path, monkeypatch):
    """Same check as above, but works as root too: make the open fail the way a chmod-000 file does."""
    import visiontune.imaging.decode as decode

    p = tmp_path / "locked.jpg"
    p.write_bytes(jpeg_bytes())

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(decode.os, "open", denied)
    with pytest.raises(ImageLoadError, match="locked.jpg: permission denied"):
        load_image(p)
