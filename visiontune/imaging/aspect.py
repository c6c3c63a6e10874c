"""The aspect bound applied before an image is resized by its short side: a very thin image is cut to
its central ``MAX_ASPECT : 1`` part (:func:`limit_aspect`; :func:`aspect_box` gives the box).
"""
from __future__ import annotations

from PIL import Image

__all__ = ["MAX_ASPECT", "aspect_box", "limit_aspect"]


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
