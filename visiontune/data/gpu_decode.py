"""The CPU side of the GPU path: decode and pre-size only; the random part runs batched on the device.

* :class:`PresizeTransform`: a dataset transform ``PIL.Image -> uint8 (3, size, size)``: the short
  side scaled to ``size`` (antialiased), then the centre square. With ``size = ceil(sz * max_zoom)``
  (:meth:`PresizeTransform.from_transforms`), every batch has one shape and
  :class:`visiontune.transforms.batched.BatchedAugment` does zoom, rotation, flips, lighting and the
  random crop on the GPU. Files are decoded in JPEG draft mode at that size (see
  :func:`visiontune.imaging.decode.open_image`).
* :func:`decode_presized`: many files at once into one ``(N, 3, size, size)`` uint8 tensor; on CUDA
  JPEGs are decoded by nvJPEG (``torchvision.io.decode_jpeg(..., device='cuda')``, one batched call)
  and resized there; other files, and JPEGs it cannot take (CMYK, EXIF-rotated), go through PIL.
  Both paths give the same shape and dtype (``decoder='torchvision'`` runs the same path on the CPU).
* :func:`gpu_train_loader`: the training loader of the GPU path for an ``ImageClassifierData``.

>>> import torch
>>> from PIL import Image
>>> from visiontune.transforms import tfms_from_stats, imagenet_stats, transforms_side_on
>>> trn, _ = tfms_from_stats(imagenet_stats, 32, aug_tfms=transforms_side_on, max_zoom=1.1)
>>> pre = PresizeTransform.from_transforms(trn)
>>> pre
PresizeTransform(size=36)
>>> x = pre(Image.new("RGB", (80, 50), (10, 200, 30)))
>>> x.shape, x.dtype, x[:, 0, 0].tolist()
(torch.Size([3, 36, 36]), torch.uint8, [10, 200, 30])
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from visiontune.transforms.core import CropType, ImageTransforms

from ..imaging.aspect import aspect_box
from ..imaging.decode import load_image
from ..imaging.limits import DEFAULT_MAX_PIXELS, ImageLoadError, read_bytes

__all__ = ["PresizeTransform", "decode_presized", "gpu_train_loader", "nvjpeg_available"]


class PresizeTransform:
    """``PIL.Image -> uint8 CHW`` of ``size x size``: short side to ``size``, centre square (``squash``: the
    whole image resized to a square). Deterministic; ``normalize``/``denorm`` as ``ImageTransforms``.

    Exactly the validation transform of side ``size`` with ``crop_pct=1`` (the same PIL operations).
    """

    def __init__(self, size: int, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), *, squash: bool = False,
                 interpolation: str = "bilinear"):
        self._val = ImageTransforms(sz=size, mean=mean, std=std, train=False, crop_pct=1.0, interpolation=interpolation)
        self.size = self._val.sz
        self.squash = bool(squash)

    @classmethod
    def from_transforms(cls, tfms: ImageTransforms) -> "PresizeTransform":
        """The pre-size for training transforms: ``ceil(sz * max_zoom)`` (their ``min_side``)."""
        if not isinstance(tfms, ImageTransforms) or not tfms.train:
            raise ValueError("PresizeTransform.from_transforms needs training transforms (tfms_from_model(...)[0])")
        return cls(tfms.min_side, tfms.mean, tfms.std, squash=tfms.crop_type is CropType.NO,
                   interpolation=tfms.interpolation)

    # the attributes datasets and loaders read from a transform
    train = False  # deterministic: no random draws (loaders need no per-item seeding for it)
    item_seedable = True
    sz = property(lambda self: self.size)
    min_side = property(lambda self: self.size)  # draft-decode JPEGs down to (at least) this side
    mean = property(lambda self: self._val.mean)
    std = property(lambda self: self._val.std)
    interpolation = property(lambda self: self._val.interpolation)

    def __call__(self, img) -> torch.Tensor:
        if not self.squash:
            return self._val(img)
        from torchvision.transforms.v2 import functional as F

        from visiontune.transforms.core import _INTERP

        if isinstance(img, torch.Tensor):
            img = F.to_pil_image(img)
        elif isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        img = img if img.mode == "RGB" else img.convert("RGB")
        img = F.resize(img, [self.size, self.size], interpolation=_INTERP[self.interpolation], antialias=True)
        return F.pil_to_tensor(img)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self._val.normalize(x)

    def denorm(self, x) -> np.ndarray:
        return self._val.denorm(x)

    def __repr__(self) -> str:
        return f"PresizeTransform(size={self.size}{', squash' if self.squash else ''})"


def nvjpeg_available(device=None) -> bool:
    """True when ``device`` (default: ``cuda``) is a usable CUDA device for ``decode_jpeg``."""
    dev = torch.device(device if device is not None else "cuda")
    return dev.type == "cuda" and torch.cuda.is_available()


def _torchvision_ok(data: bytes, max_pixels: int | None) -> bool:
    """A baseline/progressive RGB or greyscale JPEG without EXIF rotation, within the pixel cap."""
    if data[:2] != b"\xff\xd8":
        return False
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:  # header only
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return False
            if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
                return False
            return im.getexif().get(0x0112, 1) == 1
    except Exception:  # noqa: BLE001 - anything odd goes to PIL, which reports it properly
        return False


def _read_bytes(path: Path) -> bytes | None:
    try:
        return read_bytes(path)  # regular files only, with the byte cap (a FIFO never blocks)
    except ImageLoadError:  # the PIL path reports it (ImageLoadError with the reason)
        return None


def _gpu_presize(img: torch.Tensor, size: int, squash: bool, interpolation: str) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    from visiontune.transforms.core import _INTERP

    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    mode = _INTERP.get(interpolation, _INTERP["bilinear"])
    if mode not in (_INTERP["bilinear"], _INTERP["bicubic"], _INTERP["nearest"]):
        mode = _INTERP["bilinear"]
    if squash:
        return F.resize(img, [size, size], interpolation=mode, antialias=True)
    box = aspect_box(img.shape[-1], img.shape[-2])
    if box is not None:  # a 1 x 60000 strip: its central 8:1 part, as limit_aspect does on the CPU path
        left, top, right, bottom = box
        img = img[..., top:bottom, left:right]
    h, w = img.shape[-2:]
    short = min(h, w)
    new = [size, max(size, round(w * size / short))] if h <= w else [max(size, round(h * size / short)), size]
    img = F.resize(img, new, interpolation=mode, antialias=True)
    return F.center_crop(img, [size, size])


def decode_presized(files: Sequence, size: int, *, device=None, squash: bool = False, interpolation: str = "bilinear",
                    max_pixels: int | None = DEFAULT_MAX_PIXELS, decoder: str = "auto") -> torch.Tensor:
    """Decode image files into one uint8 ``(N, 3, size, size)`` batch on ``device`` (default CPU).

    Each image: short side scaled to ``size``, centre square (``squash``: whole image to a square).
    ``decoder``: ``'torchvision'``: JPEGs are decoded by ``torchvision.io.decode_jpeg`` on ``device``
    in one batched call (nvJPEG on CUDA) and resized there; ``'pil'``: PIL in draft mode, then moved
    to ``device``; ``'auto'`` (default): torchvision on CUDA, PIL on the CPU (draft mode makes big
    JPEGs cheaper). Files the torchvision path cannot take (other formats, CMYK, EXIF orientation),
    and any batch it fails on, go through PIL, which also names unreadable files
    (:class:`~visiontune.imaging.limits.ImageLoadError`). Both paths give the same shape and dtype;
    pixels differ by decoder and resampling rounding (a grey level or two on average).

    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (60, 40), (255, 0, 0)).save(d / "a.jpg"); Image.new("RGB", (30, 50), (0, 0, 255)).save(d / "b.png")
    >>> x = decode_presized([d / "a.jpg", d / "b.png"], 16)
    >>> x.shape, x.dtype, x[1, :, 8, 8].tolist()
    (torch.Size([2, 3, 16, 16]), torch.uint8, [0, 0, 255])
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if decoder not in ("auto", "torchvision", "pil"):
        raise ValueError(f"decoder must be 'auto', 'torchvision' or 'pil', got {decoder!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={dev} but CUDA is not available here")
    use_tv = decoder == "torchvision" or (decoder == "auto" and nvjpeg_available(dev))
    pre = PresizeTransform(size, squash=squash, interpolation=interpolation)
    files = [Path(os.fspath(f)) for f in files]
    out = torch.empty((len(files), 3, pre.size, pre.size), dtype=torch.uint8, device=dev)
    pil_idx = list(range(len(files)))
    if use_tv and files:
        from torchvision.io import ImageReadMode, decode_jpeg

        datas = [_read_bytes(f) for f in files]
        tv_idx = [i for i, d in enumerate(datas) if d is not None and _torchvision_ok(d, max_pixels)]
        if tv_idx:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to torchcodec
                    raw = [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in tv_idx]
                    imgs = decode_jpeg(raw, mode=ImageReadMode.RGB, device=dev)
                for i, img in zip(tv_idx, imgs):
                    out[i] = _gpu_presize(img, pre.size, squash, interpolation)
                done = set(tv_idx)
                pil_idx = [i for i in pil_idx if i not in done]
            except RuntimeError:  # the decoder refused something in the batch: PIL decodes them all
                pass
    for i in pil_idx:
        img = load_image(files[i], target_size=pre.min_side, max_pixels=max_pixels)
        out[i] = pre(img).to(dev)
    return out


def gpu_train_loader(data, *, persistent: bool = True):
    """The training loader of the GPU path for ``data`` (an ``ImageClassifierData`` on images).

    Same shuffling, batch size, ``drop_last`` and workers as ``data.trn_dl``; the workers only decode
    and pre-size (:class:`PresizeTransform`), and the batch's ``normalizer`` is a
    :class:`~visiontune.transforms.batched.BatchedAugment`: when the loader is moved to a device
    (``Loader.with_device``) the uint8 batch is copied there and augmented + normalised there.
    Raises ``ValueError`` when the training transforms hold a step the batched augmentation cannot run.
    """
    from visiontune.transforms.batched import BatchedAugment

    from .loader import Loader

    tfms, dl = data.trn_tfms, data.trn_dl
    if getattr(data.trn_ds, "is_images", True) is False:
        raise ValueError("gpu_train_loader needs image data, not feature arrays")
    aug = BatchedAugment.from_transforms(tfms)
    pre = PresizeTransform.from_transforms(tfms)
    return Loader(data.trn_ds.with_transform(pre), dl.batch_size, shuffle=True, drop_last=dl.drop_last,
                  num_workers=dl.num_workers, normalizer=aug, persistent=persistent, pin_memory=dl.pin_memory)
