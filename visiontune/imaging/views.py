"""The one definition of the views a model sees at evaluation: the clean view and the TTA views.

The learner's validation transform, its ``TTA``, the run's reported TTA accuracy, ``ExportedModel``
and ``visiontune predict --tta`` all build their views here, so they see the same pixels and report
the same numbers. Needs only Pillow (``ExportedModel`` runs without torch).

Views, in order (``learn.TTA(n_aug)`` and ``predict --tta`` use the clean view plus the first
``n_aug`` of the others):

1. ``center``: the short side scaled to ``int(sz / crop_pct)``, the centre ``sz x sz``
   (torchvision's ``Resize`` + ``CenterCrop``): the clean view, what validation accuracy is measured on;
2. ``hflip``: the clean view mirrored;
3. ``zoom_in``: the short side :data:`TTA_ZOOM` times larger, then the centre crop;
4. ``zoom_in_hflip``: that, mirrored;
5. ``zoom_out``: the whole short side scaled to ``sz``, then the centre crop.

fastai 0.7's ``TTA`` drew four *random* augmented views; fixed views keep its spirit (the clean view
plus four augmented ones, averaged) and make the number reproducible by anyone holding the export.

>>> from PIL import Image
>>> img = Image.new("RGB", (300, 200), (10, 20, 30))
>>> tta_views(2)
('center', 'hflip', 'zoom_in')
>>> [view_image(img, name, sz=64).size for name in tta_views(4)]
[(64, 64), (64, 64), (64, 64), (64, 64), (64, 64)]
"""
from __future__ import annotations

from PIL import Image

from .aspect import limit_aspect

TTA_ZOOM = 1.15
VIEW_NAMES = ("center", "hflip", "zoom_in", "zoom_in_hflip", "zoom_out")
MAX_TTA_VIEWS = len(VIEW_NAMES) - 1
"""Augmented views beyond the clean one (``n_aug`` may be 0 to this)."""

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def tta_views(n_aug: int) -> tuple[str, ...]:
    """The clean view plus the first ``n_aug`` augmented views.

    >>> tta_views(0)
    ('center',)
    >>> tta_views(5)
    Traceback (most recent call last):
    ...
    ValueError: n_aug must be between 0 and 4 (the TTA views are center, hflip, zoom_in, zoom_in_hflip, zoom_out), got 5
    """
    if isinstance(n_aug, bool) or not isinstance(n_aug, int) or not 0 <= n_aug <= MAX_TTA_VIEWS:
        raise ValueError(f"n_aug must be between 0 and {MAX_TTA_VIEWS} (the TTA views are "
                         f"{', '.join(VIEW_NAMES)}), got {n_aug!r}")
    return VIEW_NAMES[: 1 + n_aug]


def clean_short_side(sz: int, crop_pct: float) -> int:
    """The short side the clean view scales to before its centre crop: ``int(sz / crop_pct)``, timm's and
    torchvision's rule (``crop_pct=0.875``: 224 -> 256), never below ``sz``."""
    return max(sz, int(sz / crop_pct + 1e-9))


def resize_center_crop(img: Image.Image, short_side: int, sz: int,
                       resample=Image.Resampling.BILINEAR) -> Image.Image:
    """``img`` scaled so its short side is ``short_side``, then its centre ``sz x sz`` (torchvision's
    ``resize`` + ``center_crop`` rules) in one PIL resize of just the source box that becomes the crop:
    about half the work of scaling the whole image first. Where the scaled image is smaller than the
    crop, the crop is padded with black, as torchvision pads.

    >>> img = Image.effect_noise((400, 300), 64).convert("RGB")
    >>> resize_center_crop(img, 256, 224).size
    (224, 224)
    """
    w, h = img.size
    nw, nh = (short_side, int(short_side * h / w)) if w <= h else (int(short_side * w / h), short_side)
    if nw < sz or nh < sz:
        scaled = img.resize((max(nw, 1), max(nh, 1)), resample)
        out = Image.new(img.mode, (sz, sz))
        out.paste(scaled, ((sz - nw) // 2, (sz - nh) // 2))
        return out
    left, top = int(round((nw - sz) / 2.0)), int(round((nh - sz) / 2.0))
    sx, sy = w / nw, h / nh
    return img.resize((sz, sz), resample, box=(left * sx, top * sy, (left + sz) * sx, (top + sz) * sy))


def view_image(img: Image.Image, name: str = "center", *, sz: int, crop_pct: float = 1.0,
               interpolation: str = "bilinear") -> Image.Image:
    """View ``name`` of an RGB image as an ``sz x sz`` PIL image (see the module docstring).

    A very thin image is first cut to its central 8:1 part (``imaging.aspect.limit_aspect``).
    """
    if name not in VIEW_NAMES:
        raise ValueError(f"unknown view {name!r}; the views are {', '.join(VIEW_NAMES)}")
    resample = RESAMPLE.get(interpolation, Image.Resampling.BILINEAR)
    img = limit_aspect(img)
    short = clean_short_side(sz, crop_pct)
    if name.startswith("zoom_in"):
        short = max(sz, round(short * TTA_ZOOM))
    elif name == "zoom_out":
        short = sz
    out = resize_center_crop(img, short, sz, resample)
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if name.endswith("hflip") else out
