"""Which loader feeds a pass: ordered loaders of a split's clean, TTA-view or augmented images, and the
training images' loader (``data.trn_dl``, the GPU-augmentation loader, or this rank's shard under torchrun).
"""
from __future__ import annotations

import hashlib

import torch

from . import distributed


def ordered_loader(data, split: str, augment: bool, tta_view: str | None = None):
    """Images of ``split`` in order, with validation (clean) transforms, one TTA view of them
    (:mod:`visiontune.imaging.views`), or training (augmented) transforms."""
    from ..data.loader import Loader

    ds = {"train": data.trn_ds, "valid": data.val_ds, "test": data.test_ds}[split]
    if tta_view is not None and tta_view != "center":
        tfms = data.val_tfms.with_view(tta_view)
        return Loader(ds.with_transform(tfms), data.bs, num_workers=data.num_workers, normalizer=tfms, threaded=True)
    if not augment:
        return {"train": data.fix_dl, "valid": data.val_dl, "test": data.test_dl}[split]
    tfms = data.trn_tfms
    # visiontune's own augmentations seed each image: a pool of threads gives the same views as one process
    return Loader(ds.with_transform(tfms), data.bs, num_workers=data.num_workers, normalizer=tfms,
                  threaded=bool(getattr(tfms, "item_seedable", False)))


def view_seed(view: str, seed: int) -> int:
    return int(hashlib.sha256(f"{view}:{seed}".encode()).hexdigest()[:8], 16)


def view_loader(data, split: str, view: str, seed: int):
    """An ordered loader of ``split`` with clean (validation), TTA-view (``view-<name>``) or augmented
    (``aug<k>``, training) transforms; augmented views are seeded by their name and ``seed``."""
    aug = view.startswith("aug")
    if aug:
        torch.manual_seed(view_seed(view, seed))
    return ordered_loader(data, split, augment=aug, tta_view=view[len("view-"):] if view.startswith("view-") else None)


def fed(loader, device: torch.device):
    """On CUDA, the loader copies uint8 batches from pinned memory and normalises them on the GPU."""
    if device.type == "cuda" and hasattr(loader, "with_device"):
        return loader.with_device(device)
    return loader


class TrainImages:
    """The training images' loader, built once per ``data.trn_dl``: the data's own, or with ``gpu_aug`` one
    yielding pre-sized uint8 batches that are augmented batched where they are normalised (on the device; see
    ``data/gpu_decode.py``), and under torchrun this rank's shard of it."""

    def __init__(self, gpu_aug: bool, strict: bool):
        self.gpu_aug = gpu_aug
        self.strict = strict  # gpu_aug=True: an error; 'auto': falls back to the CPU transforms with a warning
        self._gpu: tuple | None = None  # (data.trn_dl it was built for, GPU-path loader or None)
        self._sharded = None  # this rank's shard of the training images, under torchrun

    @classmethod
    def for_device(cls, gpu_aug: bool | str, device: torch.device) -> "TrainImages":
        """``gpu_aug``: training images are decoded + pre-sized by the workers and augmented batched on the
        device (visiontune.transforms.batched); 'auto' = on CUDA, when the transforms allow it (else the CPU
        transforms, with a warning); True forces it (an error if the transforms do not allow it)."""
        if gpu_aug not in ("auto", True, False):
            raise ValueError(f"gpu_aug must be 'auto', True or False, got {gpu_aug!r}")
        return cls(device.type == "cuda" if gpu_aug == "auto" else gpu_aug, strict=gpu_aug is True)

    def images(self, data):
        if not self.gpu_aug:
            return data.trn_dl
        if self._gpu is None or self._gpu[0] is not data.trn_dl:
            from ..data.gpu_decode import gpu_train_loader

            try:
                dl = gpu_train_loader(data)
            except ValueError as e:
                if self.strict:
                    raise ValueError(f"gpu_aug=True: {e}") from e
                import warnings

                warnings.warn(f"visiontune: augmenting on the CPU, not the GPU: {e}", stacklevel=4)
                dl = None
            self._gpu = (data.trn_dl, dl)
        return self._gpu[1] if self._gpu[1] is not None else data.trn_dl

    def epoch(self, data, epoch_seed: int, device: torch.device):
        """One epoch's loader: shuffled by ``epoch_seed`` on every rank alike, each rank taking its slice."""
        dl = self.images(data)
        if not distributed.is_distributed():
            return fed(dl, device)
        if self._sharded is None or self._sharded.dataset is not dl.dataset:
            from ..data.loader import Loader

            sampler = distributed.ShardedBatchSampler(len(dl.dataset), dl.batch_size, dl.drop_last)
            self._sharded = Loader(dl.dataset, dl.batch_size, num_workers=dl.num_workers, normalizer=dl.normalizer,
                                   batch_sampler=sampler, persistent=True)
        self._sharded.batch_sampler.set_epoch(epoch_seed)  # same shuffle on every rank; each takes its slice
        return fed(self._sharded, device)
