"""Train / validation transforms built from a backbone's own preprocessing.

>>> from visiontune.transforms import transforms_side_on
>>> trn, val = tfms_from_model("resnet34", 64, aug_tfms=transforms_side_on, max_zoom=1.1)
>>> trn.sz, val.mean
(64, (0.485, 0.456, 0.406))
>>> from PIL import Image
>>> x = val(Image.new("RGB", (100, 80), (255, 0, 0)))
>>> x.shape, x.dtype
(torch.Size([3, 64, 64]), torch.uint8)
"""
from __future__ import annotations

import copy
import enum
import math
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ..imaging.aspect import limit_aspect
from ..imaging.views import TTA_ZOOM, VIEW_NAMES, clean_short_side, resize_center_crop, view_image  # noqa: F401 (re-export)
from .augment import RandomDihedral, RandomFlip, RandomLighting, RandomRotate, random_int, random_uniform

__all__ = ["CropType", "ImageTransforms", "tfms_from_model", "tfms_from_stats",
           "imagenet_stats", "inception_stats"]

imagenet_stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
inception_stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

_INTERP = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
    "lanczos": InterpolationMode.LANCZOS,
    "box": InterpolationMode.BOX,
    "hamming": InterpolationMode.HAMMING,
}


class CropType(enum.Enum):
    """How the training image is cut to ``sz x sz``."""

    RANDOM = "random"  # random crop (training default)
    CENTER = "center"  # centre crop
    NO = "no"  # no crop: squash the whole image to a square


_PIL_RESAMPLE = {name: getattr(Image.Resampling, name.upper()) for name in _INTERP}


class ImageTransforms:
    """``PIL.Image -> uint8 CHW tensor`` of size ``sz x sz``, plus the normalisation that goes with it.

    Training (``train=True``): scale the short side to ``sz * U(1, max_zoom)``, apply ``aug_tfms``
    (each ``PIL -> PIL``), then crop ``sz`` (random / centre; ``CropType.NO`` squashes instead).
    An image more than ``MAX_ASPECT`` (8) times longer than wide, or wider than long, is first cut to
    its central 8:1 part (:func:`limit_aspect`), so a 1 x 30,000 image cannot become gigabytes.
    Validation: scale the short side to ``sz / crop_pct``, centre-crop ``sz``.

    Normalisation is *not* applied here (workers ship compact uint8); loaders call :meth:`normalize`
    on each batch, and :meth:`denorm` undoes it for display.
    """

    def __init__(self, *, sz: int, mean: Sequence[float], std: Sequence[float], train: bool,
                 aug_tfms: Sequence[Callable] | None = None, max_zoom: float | None = None,
                 crop_type: CropType = CropType.RANDOM, crop_pct: float = 1.0,
                 interpolation: str = "bilinear", view: str = "center"):
        if not isinstance(sz, (int, np.integer)) or isinstance(sz, bool) or sz <= 0:
            raise ValueError(f"sz must be a positive int (the square side in pixels), got {sz!r}")
        if max_zoom is not None and max_zoom < 1:
            raise ValueError(f"max_zoom must be >= 1 (1.1 means up to 10% zoom), got {max_zoom}")
        if not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        if isinstance(crop_type, str):
            crop_type = {c.value: c for c in CropType}.get(crop_type.lower(), crop_type)
        if not isinstance(crop_type, CropType):
            raise ValueError(f"crop_type must be one of {[c.name for c in CropType]}, got {crop_type!r}")
        if interpolation not in _INTERP:
            raise ValueError(f"interpolation must be one of {sorted(_INTERP)}, got {interpolation!r}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values each (std > 0), got mean={mean}, std={std}")
        aug = list(aug_tfms or [])
        for t in aug:
            if not callable(t):
                raise TypeError(f"aug_tfms must hold callables (PIL.Image -> PIL.Image), got {t!r}")
        self.sz = int(sz)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.train = bool(train)
        self.aug_tfms = aug if self.train else []
        self.max_zoom = float(max_zoom) if max_zoom else None
        self.crop_type = crop_type
        self.crop_pct = float(crop_pct)
        self.interpolation = interpolation
        if view not in VIEW_NAMES or (self.train and view != "center"):
            raise ValueError(f"view must be one of {', '.join(VIEW_NAMES)} (validation transforms only), got {view!r}")
        self.view = view

    def with_view(self, view: str) -> "ImageTransforms":
        """These validation transforms showing TTA view ``view`` (see :mod:`visiontune.imaging.views`)."""
        out = copy.copy(self)
        if self.train or view not in VIEW_NAMES:
            raise ValueError(f"with_view needs validation transforms and one of {', '.join(VIEW_NAMES)}, got {view!r}")
        out.view = view
        return out

    @property
    def item_seedable(self) -> bool:
        """Every random draw goes through :func:`~visiontune.transforms.augment.item_random_state`:
        true for the validation transforms and for training ones built from visiontune's steps (a
        custom step such as a torchvision transform draws from torch's global generator)."""
        own = (RandomRotate, RandomLighting, RandomFlip, RandomDihedral)
        return all(isinstance(t, own) or getattr(t, "item_seedable", False) for t in self.aug_tfms)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def min_side(self) -> int:
        """Smallest decoded side this transform needs (used for JPEG draft decoding)."""
        if self.train:
            return math.ceil(self.sz * (self.max_zoom or 1.0))
        return math.ceil(clean_short_side(self.sz, self.crop_pct) * (TTA_ZOOM if self.view.startswith("zoom_in") else 1.0))

    def __call__(self, img) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            img = F.to_pil_image(img)
        elif isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        if img.mode != "RGB":
            img = img.convert("RGB")
        sz = self.sz
        if not self.train:
            return F.pil_to_tensor(view_image(img, self.view, sz=sz, crop_pct=self.crop_pct,
                                              interpolation=self.interpolation))
        interp = _INTERP[self.interpolation]
        zoom = 1.0
        if self.max_zoom and self.max_zoom > 1:
            zoom = 1.0 + (self.max_zoom - 1.0) * random_uniform()
        target = max(sz, round(sz * zoom))
        if self.crop_type is CropType.NO:
            img = F.resize(img, [target, target], interpolation=interp, antialias=True)
        else:  # a very thin image is cut to its central MAX_ASPECT:1 part first (bounded memory)
            img = F.resize(limit_aspect(img), target, interpolation=interp, antialias=True)
        for t in self.aug_tfms:
            img = t(img)
        w, h = img.size
        if self.crop_type is CropType.RANDOM and (w > sz or h > sz):
            top = random_int(max(h - sz, 0) + 1)
            left = random_int(max(w - sz, 0) + 1)
            img = F.crop(img, top, left, sz, sz)
        else:
            img = F.center_crop(img, [sz, sz])
        return F.pil_to_tensor(img)

    # -- normalisation ----------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) image(s), CHW or NCHW -> float32 ``(x - mean) / std``."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def denorm(self, x) -> np.ndarray:
        """Undo :meth:`normalize`: NCHW batch -> NHWC, or CHW -> HWC, float32 numpy in [0, 1]."""
        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"denorm expects a CHW image or an NCHW batch with 3 channels, got shape {x.shape}")
        mean = np.asarray(self.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(3, 1, 1)
        x = x * std + mean
        x = np.moveaxis(x, -3, -1)
        return np.clip(x, 0.0, 1.0)

    def __repr__(self) -> str:
        kind = "train" if self.train else "valid"
        extra = f", max_zoom={self.max_zoom}, aug_tfms={self.aug_tfms}" if self.train else f", crop_pct={self.crop_pct}"
        if not self.train and self.view != "center":
            extra += f", view={self.view!r}"
        return (f"ImageTransforms({kind}, sz={self.sz}, mean={self.mean}, std={self.std}, "
                f"crop_type={self.crop_type.name}{extra})")


def tfms_from_stats(stats, sz: int, aug_tfms=None, max_zoom: float | None = None,
                    crop_type: CropType = CropType.RANDOM, crop_pct: float = 1.0,
                    interpolation: str = "bilinear") -> tuple[ImageTransforms, ImageTransforms]:
    """``(train, valid)`` transforms for explicit ``stats = (mean, std)``."""
    mean, std = stats
    common = dict(sz=sz, mean=mean, std=std, interpolation=interpolation)
    trn = ImageTransforms(train=True, aug_tfms=aug_tfms, max_zoom=max_zoom, crop_type=crop_type, **common)
    val = ImageTransforms(train=False, crop_pct=crop_pct, **common)
    return trn, val


def tfms_from_model(arch, sz: int, aug_tfms=None, max_zoom: float | None = None,
                    crop_type: CropType = CropType.RANDOM, crop_pct: float | None = 1.0
                    ) -> tuple[ImageTransforms, ImageTransforms]:
    """``(train, valid)`` transforms whose normalisation comes from ``arch``'s pretrained config.

    Args:
        arch: an ``Arch`` (``visiontune.resnet34``), a backbone name, or ``None`` for the default
            (``efficientnet_lite0``: inputs scaled to [-1, 1]; ResNets use ImageNet mean/std).
        sz: side of the square the network sees.
        aug_tfms: training augmentations, e.g. ``transforms_side_on`` or ``transforms_top_down``.
        max_zoom: random zoom up to this factor in training (``1.1`` = up to 10%).
        crop_type: ``CropType.RANDOM`` (default), ``CENTER``, or ``NO`` (squash) for training.
        crop_pct: validation scales the short side to ``sz / crop_pct`` then centre-crops ``sz``;
            ``1.0`` (fastai 0.7) keeps as much as possible, ``None`` uses the backbone's own value.
    """
    from visiontune.models.registry import DEFAULT_ARCH, get_arch

    a = DEFAULT_ARCH if arch is None else get_arch(arch)
    pp = a.preprocessing
    if crop_pct is None:
        crop_pct = pp.crop_pct
    interp = pp.interpolation if pp.interpolation in _INTERP else "bilinear"
    return tfms_from_stats((pp.mean, pp.std), sz, aug_tfms=aug_tfms, max_zoom=max_zoom,
                           crop_type=crop_type, crop_pct=crop_pct, interpolation=interp)
