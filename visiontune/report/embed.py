"""Images in the report: embedded PNG data (``<img src="data:image/png;base64,...">``), figures as PNG,
the augmentation previews kept under a size, and the top losses' thumbnails.

Everything here works on bytes and decoded ``PIL`` images, never on paths: the run's reader
(:mod:`visiontune.run.reporting`) decodes files through :mod:`visiontune.imaging.decode` and hands the
images here.
"""
from __future__ import annotations

import base64
import io

from . import figures
from .markup import _esc

THUMB_PX = 160
MAX_EMBED_BYTES = 500_000  # a larger aug_previews.png is re-encoded smaller (the page stays under ~2 MB)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _img_tag(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{_esc(alt)}">'


def _fig_img(fig, alt: str) -> str:
    return _img_tag(figures.fig_to_png_bytes(fig), alt)


def embeddable_png(data: bytes, im) -> bytes:
    """The bytes to embed for an image file's ``data`` (decoded: ``im``): the file itself when it is a PNG
    under :data:`MAX_EMBED_BYTES`, else ``im`` re-encoded smaller (:func:`_shrink_png`)."""
    if data[:8] != PNG_SIGNATURE or len(data) > MAX_EMBED_BYTES:
        return _shrink_png(im, MAX_EMBED_BYTES)
    return data


def _shrink_png(im, max_bytes: int, max_side: int = 1200) -> bytes:
    """PNG bytes of ``im`` under ``max_bytes``: first full colour, then a 256-colour palette, then smaller."""
    from PIL import Image

    side = max_side
    while True:
        small = im.copy()
        small.thumbnail((side, side))
        for img in (small, small.quantize(256, method=Image.Quantize.MEDIANCUT)):
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            if buf.tell() <= max_bytes or side <= 64:
                return buf.getvalue()
        side = int(side * 0.75)


def thumbnail_png(im) -> bytes:
    """A decoded image (opened with ``draft=THUMB_PX * 2``) as a PNG thumbnail of at most :data:`THUMB_PX`."""
    im.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
