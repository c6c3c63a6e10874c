"""Small, picklable augmentation steps and the lesson's presets.

Each step takes a ``PIL.Image`` and returns one; randomness comes from torch's generator, so
``torch.manual_seed`` (and DataLoader worker seeding) makes it reproducible. Inside
:func:`item_random_state` the draws of the current thread come from a generator of their own
instead: loaders that decode in a pool of threads give every image its own seed, so the views
do not depend on which thread ran first. The presets are plain
lists you pass as ``aug_tfms=``; any other callable ``PIL.Image -> PIL.Image`` (for example a
``torchvision.transforms.v2`` transform) may be added to them.

* ``transforms_basic``: small rotation (+-10 degrees) and lighting (brightness/contrast +-5%).
* ``transforms_side_on``: basic + horizontal flip (photos taken from the side: dogs, cats, ants).
* ``transforms_top_down``: basic + the 8 dihedral flips/rotations (satellite, microscopy).
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = [
    "item_random_state",
    "random_uniform",
    "random_int",
    "RandomRotate",
    "RandomLighting",
    "RandomFlip",
    "RandomDihedral",
    "transforms_basic",
    "transforms_side_on",
    "transforms_top_down",
]


_item_rng = threading.local()


@contextlib.contextmanager
def item_random_state(seed: int):
    """Within this block, this thread's augmentation draws come from a generator seeded with ``seed``.

    >>> from PIL import Image
    >>> img = Image.new("RGB", (32, 24))
    >>> with item_random_state(7):
    ...     a = [random_uniform(0, 1) for _ in range(3)]
    >>> with item_random_state(7):
    ...     b = [random_uniform(0, 1) for _ in range(3)]
    >>> a == b
    True
    """
    previous = getattr(_item_rng, "generator", None)
    _item_rng.generator = torch.Generator().manual_seed(int(seed))
    try:
        yield
    finally:
        _item_rng.generator = previous


def random_uniform(lo: float = 0.0, hi: float = 1.0) -> float:
    """A number from ``U(lo, hi)``: the thread's item generator inside :func:`item_random_state`, else torch's."""
    return lo + (hi - lo) * torch.rand((), generator=getattr(_item_rng, "generator", None)).item()


def random_int(high: int) -> int:
    """An integer in ``[0, high)``, drawn like :func:`random_uniform`."""
    return int(torch.randint(0, max(int(high), 1), (), generator=getattr(_item_rng, "generator", None)).item())


def _uniform(lo: float, hi: float) -> float:
    return random_uniform(lo, hi)


class RandomRotate:
    """Rotate by a random angle in ``[-deg, deg]`` with probability ``p``; borders are reflected, not black."""

    def __init__(self, deg: float = 10.0, p: float = 0.75):
        if deg < 0 or not 0 <= p <= 1:
            raise ValueError(f"RandomRotate needs deg >= 0 and 0 <= p <= 1, got deg={deg}, p={p}")
        self.deg, self.p = float(deg), float(p)

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.deg == 0 or random_uniform() >= self.p:
            return img
        angle = _uniform(-self.deg, self.deg)
        w, h = img.size
        pad = min(math.ceil(max(w, h) * abs(math.sin(math.radians(angle)))) + 2, w - 1, h - 1)
        if pad <= 0:
            return img
        arr = np.asarray(img)
        arr = np.pad(arr, ((pad, pad), (pad, pad)) + ((0, 0),) * (arr.ndim - 2), mode="reflect")
        big = F.rotate(Image.fromarray(arr), angle, interpolation=InterpolationMode.BILINEAR)
        return F.crop(big, pad, pad, h, w)

    def __repr__(self) -> str:
        return f"RandomRotate(deg={self.deg:g}, p={self.p:g})"


class RandomLighting:
    """Random brightness and contrast: factors drawn from ``1 +- b`` and ``1 +- c`` (fastai 0.7 used 0.05)."""

    def __init__(self, b: float = 0.05, c: float = 0.05):
        if b < 0 or c < 0:
            raise ValueError(f"RandomLighting needs b >= 0 and c >= 0, got b={b}, c={c}")
        self.b, self.c = float(b), float(c)

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.b:
            img = F.adjust_brightness(img, 1.0 + _uniform(-self.b, self.b))
        if self.c:
            img = F.adjust_contrast(img, 1.0 + _uniform(-self.c, self.c))
        return img

    def __repr__(self) -> str:
        return f"RandomLighting(b={self.b:g}, c={self.c:g})"


class RandomFlip:
    """Horizontal (left-right) flip with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img: Image.Image) -> Image.Image:
        return F.horizontal_flip(img) if random_uniform() < self.p else img

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p:g})"


_DIHEDRAL = (
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)


class RandomDihedral:
    """One of the 8 symmetries of a square (identity, 3 rotations, 4 flips), chosen uniformly."""

    def __call__(self, img: Image.Image) -> Image.Image:
        op = _DIHEDRAL[random_int(8)]
        return img if op is None else img.transpose(op)

    def __repr__(self) -> str:
        return "RandomDihedral()"


transforms_basic = [RandomRotate(10), RandomLighting(0.05, 0.05)]
transforms_side_on = transforms_basic + [RandomFlip()]
transforms_top_down = transforms_basic + [RandomDihedral()]
