"""Batched training augmentation on any device: one resample per batch, per-sample random parameters.

The CPU training transforms (:class:`~visiontune.transforms.core.ImageTransforms` with ``train=True``)
work image by image in PIL: scale the short side to ``sz * U(1, max_zoom)``, apply the ``aug_tfms``
(rotation, lighting, flips, dihedral), crop ``sz``. :class:`BatchedAugment` does the same random part
on a whole batch of pre-sized square images already on the GPU (or the CPU):

* zoom, rotation (reflected borders), horizontal flip, the 8 dihedral symmetries and the random
  crop become **one affine matrix per sample**, applied with one ``affine_grid`` + ``grid_sample``;
* lighting (brightness, then contrast about the image's grey mean, as PIL does) is a per-sample
  scale and shift;
* the result is normalised with the transforms' mean/std, so :meth:`BatchedAugment.normalize`
  replaces ``ImageTransforms.normalize`` as a loader's ``normalizer``.

Parameters are drawn on the CPU (a few numbers per image) from ``generator`` (a CPU
``torch.Generator``; ``None``: torch's global generator, which ``torch.manual_seed`` seeds), so a seed
gives the same augmentation on any device. The CPU side only decodes and pre-sizes (see
:class:`visiontune.data.gpu_decode.PresizeTransform`): every image to a ``presize x presize`` uint8
square, ``presize = ceil(sz * max_zoom)``. Difference from the CPU path: the random crop is taken
within the centre square of the image (the CPU path may crop anywhere along the long side).

>>> import torch
>>> from visiontune.transforms import imagenet_stats, tfms_from_stats, transforms_side_on
>>> trn, _ = tfms_from_stats(imagenet_stats, 32, aug_tfms=transforms_side_on, max_zoom=1.1)
>>> aug = BatchedAugment.from_transforms(trn)
>>> aug
BatchedAugment(sz=32, presize=36, max_zoom=1.1, rotate=(10, 0.75), lighting=(0.05, 0.05), flip=0.5, dihedral=False, crop=RANDOM)
>>> x = torch.randint(0, 256, (4, 3, aug.presize, aug.presize), dtype=torch.uint8)
>>> out = aug(x, generator=torch.Generator().manual_seed(0))
>>> out.shape, out.dtype
(torch.Size([4, 3, 32, 32]), torch.float32)
>>> p = aug.sample(1000, generator=torch.Generator().manual_seed(0))
>>> bool(p.zoom.min() >= 1 and p.zoom.max() <= 1.1 and p.angle.abs().max() <= 10)
True
>>> torch.equal(aug(x, generator=torch.Generator().manual_seed(1)), aug(x, generator=torch.Generator().manual_seed(1)))
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .augment import RandomDihedral, RandomFlip, RandomLighting, RandomRotate
from .core import CropType, ImageTransforms

__all__ = ["AugParams", "BatchedAugment", "dihedral_matrices"]

# The sampling map (output coords -> input coords; x right, y down, origin at the centre) of each of
# PIL's transpositions, in the order of ``augment._DIHEDRAL``: identity, FLIP_LEFT_RIGHT,
# FLIP_TOP_BOTTOM, ROTATE_90, ROTATE_180, ROTATE_270, TRANSPOSE, TRANSVERSE.
_DIHEDRAL_MATS = (
    ((1, 0), (0, 1)),
    ((-1, 0), (0, 1)),
    ((1, 0), (0, -1)),
    ((0, -1), (1, 0)),
    ((-1, 0), (0, -1)),
    ((0, 1), (-1, 0)),
    ((0, 1), (1, 0)),
    ((0, -1), (-1, 0)),
)
_GREY = (0.2989, 0.587, 0.114)  # torchvision's (and PIL's) RGB -> L weights


def dihedral_matrices() -> torch.Tensor:
    """The 8 symmetries of the square as ``(8, 2, 2)`` sampling maps, indexed like :class:`RandomDihedral`.

    >>> dihedral_matrices()[1].tolist()  # FLIP_LEFT_RIGHT: output (x, y) reads input (-x, y)
    [[-1.0, 0.0], [0.0, 1.0]]
    """
    return torch.tensor(_DIHEDRAL_MATS, dtype=torch.float32)


@dataclass
class AugParams:
    """Per-sample parameters of one batch (all CPU tensors of length N).

    ``zoom`` (>= 1), ``angle`` (degrees, counter-clockwise), ``flip`` (bool, left-right),
    ``dihedral`` (int 0..7, see :func:`dihedral_matrices`), ``center`` ((N, 2): crop centre as a
    fraction in [-1, 1] of the room the crop has along x and y; 0 is the centre), ``brightness`` and
    ``contrast`` (factors, 1 = unchanged).
    """

    zoom: torch.Tensor
    angle: torch.Tensor
    flip: torch.Tensor
    dihedral: torch.Tensor
    center: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor

    @classmethod
    def identity(cls, n: int) -> "AugParams":
        """No augmentation: zoom 1, no rotation or flip, centre crop, unchanged lighting.

        >>> AugParams.identity(2).zoom.tolist()
        [1.0, 1.0]
        """
        ones, zeros = torch.ones(n), torch.zeros(n)
        return cls(zoom=ones.clone(), angle=zeros.clone(), flip=torch.zeros(n, dtype=torch.bool),
                   dihedral=torch.zeros(n, dtype=torch.long), center=torch.zeros(n, 2),
                   brightness=ones.clone(), contrast=ones.clone())

    def __len__(self) -> int:
        return len(self.zoom)

    def with_(self, **changes) -> "AugParams":
        """A copy with some fields replaced (``p.with_(flip=torch.ones(n, dtype=torch.bool))``)."""
        return replace(self, **changes)


class BatchedAugment:
    """Random training augmentation of a batch of square images, on the batch's device.

    Args:
        sz: output side.
        mean, std: normalisation (3 values each).
        max_zoom: zoom up to this factor (``None`` or 1: none).
        rotate: ``(deg, p)``: rotate by ``U(-deg, deg)`` with probability ``p``, or ``None``.
        lighting: ``(b, c)``: brightness and contrast factors ``1 +- b`` / ``1 +- c``, or ``None``.
        flip: probability of a left-right flip (0: none).
        dihedral: apply one of the 8 square symmetries, uniformly.
        crop_type: ``CropType.RANDOM`` (random crop), ``CENTER``, or ``NO`` (the whole image, squashed).
        interpolation: ``'bilinear'`` (default) or ``'nearest'``.
        generator: a CPU ``torch.Generator`` used by :meth:`normalize` (``None``: torch's global one).

    Build it from training transforms with :meth:`from_transforms`.
    """

    def __init__(self, sz: int, mean, std, *, max_zoom: float | None = None, rotate: tuple | None = None,
                 lighting: tuple | None = None, flip: float = 0.0, dihedral: bool = False,
                 crop_type: CropType = CropType.RANDOM, interpolation: str = "bilinear",
                 generator: torch.Generator | None = None):
        if not isinstance(sz, (int, np.integer)) or isinstance(sz, bool) or sz <= 0:
            raise ValueError(f"sz must be a positive int, got {sz!r}")
        if max_zoom is not None and max_zoom < 1:
            raise ValueError(f"max_zoom must be >= 1 (1.1 means up to 10% zoom), got {max_zoom}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values each (std > 0), got mean={mean}, std={std}")
        if rotate is not None and (len(rotate) != 2 or rotate[0] < 0 or not 0 <= rotate[1] <= 1):
            raise ValueError(f"rotate must be (deg >= 0, 0 <= p <= 1) or None, got {rotate!r}")
        if lighting is not None and (len(lighting) != 2 or min(lighting) < 0):
            raise ValueError(f"lighting must be (b >= 0, c >= 0) or None, got {lighting!r}")
        if not 0 <= flip <= 1:
            raise ValueError(f"flip is a probability in [0, 1], got {flip}")
        if not isinstance(crop_type, CropType):
            raise ValueError(f"crop_type must be a CropType, got {crop_type!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError("generator must be a CPU torch.Generator: parameters are drawn on the CPU")
        self.sz = int(sz)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.max_zoom = float(max_zoom) if max_zoom and max_zoom > 1 else None
        self.rotate = (float(rotate[0]), float(rotate[1])) if rotate and rotate[0] > 0 and rotate[1] > 0 else None
        self.lighting = (float(lighting[0]), float(lighting[1])) if lighting and max(lighting) > 0 else None
        self.flip = float(flip)
        self.dihedral = bool(dihedral)
        self.crop_type = crop_type
        self.interpolation = interpolation
        self.generator = generator

    @classmethod
    def from_transforms(cls, tfms: ImageTransforms, generator: torch.Generator | None = None) -> "BatchedAugment":
        """The batched equivalent of training transforms built by ``tfms_from_model(..., aug_tfms=...)``.

        Understands the steps of :mod:`visiontune.transforms.augment` (``RandomRotate``,
        ``RandomLighting``, ``RandomFlip``, ``RandomDihedral``), so ``transforms_basic``,
        ``transforms_side_on`` and ``transforms_top_down``; any other step raises ``ValueError``
        (train with ``gpu_aug=False`` then: the CPU path runs any PIL callable).
        """
        if not isinstance(tfms, ImageTransforms):
            raise TypeError(f"from_transforms needs an ImageTransforms (tfms_from_model(...)[0]), got {type(tfms).__name__}")
        if not tfms.train:
            raise ValueError("from_transforms needs the training transforms (tfms_from_model(...)[0]), "
                             "not the validation ones")
        rotate = lighting = None
        flip, dihedral = 0.0, False
        seen: set[type] = set()
        for t in tfms.aug_tfms:
            kind = type(t)
            if kind in seen:
                raise ValueError(f"aug_tfms holds two {kind.__name__} steps; the batched (GPU) augmentation supports "
                                 "one of each. Use gpu_aug=False to run them on the CPU.")
            seen.add(kind)
            if kind is RandomRotate:
                rotate = (t.deg, t.p)
            elif kind is RandomLighting:
                lighting = (t.b, t.c)
            elif kind is RandomFlip:
                flip = t.p
            elif kind is RandomDihedral:
                dihedral = True
            else:
                raise ValueError(f"the batched (GPU) augmentation cannot run the step {t!r}: it supports RandomRotate, "
                                 "RandomLighting, RandomFlip and RandomDihedral (the transforms_side_on / "
                                 "transforms_top_down presets). Use gpu_aug=False to run other steps on the CPU.")
        interp = "nearest" if tfms.interpolation == "nearest" else "bilinear"
        return cls(tfms.sz, tfms.mean, tfms.std, max_zoom=tfms.max_zoom, rotate=rotate, lighting=lighting, flip=flip,
                   dihedral=dihedral, crop_type=tfms.crop_type, interpolation=interp, generator=generator)

    @property
    def presize(self) -> int:
        """Side of the square the CPU should pre-size images to: ``ceil(sz * max_zoom)``."""
        return math.ceil(self.sz * (self.max_zoom or 1.0))

    # ------------------------------------------------------------------ parameters
    def sample(self, n: int, generator: torch.Generator | None = None) -> AugParams:
        """Draw parameters for ``n`` images (on the CPU, from ``generator`` or torch's global generator)."""
        g = generator

        def u(lo, hi, *shape):
            return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

        p = AugParams.identity(n)
        if self.max_zoom:
            p.zoom = u(1.0, self.max_zoom)
        if self.rotate:
            deg, prob = self.rotate
            on = torch.rand(n, generator=g) < prob
            p.angle = torch.where(on, u(-deg, deg), torch.zeros(n))
        if self.lighting:
            b, c = self.lighting
            p.brightness, p.contrast = u(1 - b, 1 + b), u(1 - c, 1 + c)
        if self.flip:
            p.flip = torch.rand(n, generator=g) < self.flip
        if self.dihedral:
            p.dihedral = torch.randint(0, 8, (n,), generator=g)
        if self.crop_type is CropType.RANDOM:
            p.center = u(-1.0, 1.0, 2)
        return p

    def theta(self, params: AugParams, height: int, width: int) -> torch.Tensor:
        """``(N, 2, 3)`` matrices for ``F.affine_grid`` (``align_corners=False``) on ``height x width`` inputs.

        Output coords ``u`` in [-1, 1]: flip and dihedral act on ``u``; the crop window (side
        ``short side / zoom``) sits at ``center``; the rotation turns the window about the image centre.
        """
        n = len(params)
        zoom = params.zoom.double()
        rad = torch.deg2rad(params.angle.double())
        cos, sin = torch.cos(rad), torch.sin(rad)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (N, 2, 2)
        sym = dihedral_matrices().double()[params.dihedral]
        flip = torch.ones(n, 2, dtype=torch.float64)
        flip[:, 0] = torch.where(params.flip, -1.0, 1.0)
        sym = flip[:, :, None] * sym  # the flip's map applied after the dihedral's: F @ D
        if self.crop_type is CropType.NO:  # squash the whole image to a square: work in normalised units
            to_norm = torch.ones(n, 2, dtype=torch.float64)
            half = 1.0 / zoom
            room = torch.zeros(n, 2, dtype=torch.float64)
        else:  # pixel units, origin at the centre: rotation keeps the image's aspect
            to_norm = torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64).expand(n, 2)
            half = min(height, width) / 2.0 / zoom
            room = torch.stack([width / 2.0 - half, height / 2.0 - half], -1).clamp_min(0)
        lin = to_norm[:, :, None] * (rot @ (half[:, None, None] * sym))
        shift = to_norm * (rot @ (params.center.double() * room)[:, :, None])[:, :, 0]
        return torch.cat([lin, shift[:, :, None]], -1).float()

    # ------------------------------------------------------------------ applying
    def apply(self, x: torch.Tensor, params: AugParams) -> torch.Tensor:
        """Augment ``x`` (uint8 0..255 or float 0..1, NCHW, 3 channels, any device) with ``params``;
        returns float32 ``(N, 3, sz, sz)``, normalised, on ``x``'s device."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"BatchedAugment expects an NCHW batch with 3 channels, got {shape}")
        if len(params) != x.shape[0]:
            raise ValueError(f"{len(params)} parameter sets for a batch of {x.shape[0]} images")
        dev = x.device
        img = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        n, _, h, w = img.shape
        if self.lighting is not None or not _all_one(params.brightness, params.contrast):
            b = params.brightness.to(dev, torch.float32).view(n, 1, 1, 1)
            c = params.contrast.to(dev, torch.float32).view(n, 1, 1, 1)
            img = (img * b).clamp_(0, 1)
            grey = torch.tensor(_GREY, device=dev).view(1, 3, 1, 1)
            m = (img * grey).sum(1, keepdim=True).mean((2, 3), keepdim=True)
            img = (img * c + (1 - c) * m).clamp_(0, 1)
        theta = self.theta(params, h, w).to(dev)
        grid = F.affine_grid(theta, [n, 3, self.sz, self.sz], align_corners=False)
        out = F.grid_sample(img, grid, mode=self.interpolation, padding_mode="reflection", align_corners=False)
        mean = torch.tensor(self.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        return (out - mean) / std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw parameters for the batch (from ``generator``) and :meth:`apply` them."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"BatchedAugment expects an NCHW batch with 3 channels, got {shape}")
        return self.apply(x, self.sample(x.shape[0], generator))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Loader hook: augment + normalise a uint8 batch (drawing from ``self.generator``)."""
        return self(x, self.generator)

    def denorm(self, x) -> np.ndarray:
        """Undo the normalisation for display: NCHW -> NHWC float numpy in [0, 1]."""
        return ImageTransforms(sz=self.sz, mean=self.mean, std=self.std, train=False).denorm(x)

    def __repr__(self) -> str:
        def g(v):
            return None if v is None else f"{v:g}"

        rot = None if self.rotate is None else f"({g(self.rotate[0])}, {g(self.rotate[1])})"
        light = None if self.lighting is None else f"({g(self.lighting[0])}, {g(self.lighting[1])})"
        return (f"BatchedAugment(sz={self.sz}, presize={self.presize}, max_zoom={g(self.max_zoom)}, rotate={rot}, "
                f"lighting={light}, flip={g(self.flip)}, dihedral={self.dihedral}, crop={self.crop_type.name})")


def _all_one(*ts: torch.Tensor) -> bool:
    return all(bool((t == 1).all()) for t in ts)
