"""The learner's activation store: pooled body activations per split and view, their cache keys, the
forward engines that compute them (memoised per module and weights), and the head's training batches
drawn from them.

Precompute: the body runs once over the training images (no augmentation), validation and test; the
pooled activations go to the on-disk cache (:mod:`visiontune.features.cache`) and are kept in memory
for the current body weights. ``precompute_aug=K`` adds K augmented views of the training images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..features.cache import fingerprint_files
from ..models.digest import weights_digest as state_digest
from . import distributed
from .loaders import view_loader

READ_AHEAD_BYTES = 256 * 2**20  # decoded batches kept while the first engine builds


def tfms_desc(tfms) -> dict:
    """What of a transform pipeline names the activations it gives (part of the cache key)."""
    keys = ("sz", "mean", "std", "crop_pct", "crop_type", "interpolation", "max_zoom", "aug_names")
    desc = {k: getattr(tfms, k, None) for k in keys}
    desc["repr"] = repr(tfms)
    desc["geometry"] = "imaging.views"  # the views' resize rule (int(sz / crop_pct), one box resize)
    if getattr(tfms, "train", False) and getattr(tfms, "item_seedable", False):
        desc["rng"] = "per-image seeds"  # augmented views drawn per image (threaded loaders): not older caches' views
    return desc


def split_dataset(data, split: str):
    return {"train": data.trn_ds, "valid": data.val_ds, "test": data.test_ds}[split]


class ActivationStore:
    """Activations and engines of one learner. It reads the learner's public attributes (``data``, ``body``,
    ``pool``, ``arch``, ``cache``, ``device``, ``engine_kind``, ``precompute_aug``, ``verbose``), which the
    learner's users may change (``set_data``, ``learn.precompute_aug = k``)."""

    def __init__(self, learner):
        self.learner = learner
        self.engines: dict = {}  # (module name, weights digest, fp32) -> forward engine
        self.acts: dict[str, np.ndarray] = {}  # cache key -> activations (for the current body digest)
        self._digest_memo: tuple | None = None

    def clear(self) -> None:
        self.acts.clear()
        self.engines.clear()

    def key(self, split: str, view: str, seed: int = 0) -> str:
        learn = self.learner
        ds = split_dataset(learn.data, split)
        aug = view.startswith("aug")
        tfms = learn.data.trn_tfms if aug else learn.data.val_tfms
        if view.startswith("view-"):
            tfms = tfms.with_view(view[len("view-"):])
        return learn.cache.key(
            arch=learn.arch.timm_name, weights=self.body_digest(), split=split, view=view,
            tfms=tfms_desc(tfms), root=str(Path(learn.data.path).resolve()),
            files=fingerprint_files(ds.file_fingerprint()),
            numerics="bf16-allowed" if split == "train" else "fp32",
            **({"seed": seed} if aug and seed else {}),  # seed 0 keeps the keys caches were written under
        )

    def body_digest(self) -> str:
        # Hashing every weight costs ~0.1-0.3 s; it is redone only when a body tensor changed (data pointer /
        # in-place version counter), not on every epoch's cache lookup.
        from ..features.engines_base import _weights_key

        body = self.learner.body
        key = _weights_key(body)
        if self._digest_memo is None or self._digest_memo[0] != key:
            self._digest_memo = (key, state_digest(body))
        return self._digest_memo[1]

    def features_module(self) -> nn.Module:
        return nn.Sequential(self.learner.body, self.learner.pool)

    def engine(self, module_name: str, module: nn.Module, n_images: int, digest: str | None = None,
               fp32: bool = False, input_shape: tuple[int, ...] | None = None):
        """The forward engine for ``module``; ``fp32`` for evaluation (validation, test, TTA), so the numbers
        match the fp32 export that ``visiontune predict`` runs; training passes may use bf16 where fast.
        ``input_shape``: (C, H, W) of float inputs other than the images (the late group's, on early maps)."""
        from ..features.engine import create_engine

        learn = self.learner
        digest = digest or state_digest(module)
        key = (module_name, digest, fp32)
        if key not in self.engines:
            for stale in [k for k in self.engines if k[0] == module_name and k[2] == fp32]:
                del self.engines[stale]
            sz = learn.data.sz
            kind = "torch-cl" if fp32 and learn.engine_kind == "torch-bf16" else learn.engine_kind
            images = input_shape is None
            self.engines[key] = create_engine(module, kind=kind,
                                              example_input_shape=(1, 3, sz, sz) if images else (1, *input_shape),
                                              device=learn.device, n_images=n_images,
                                              # the pretrained body's export is what later runs reuse
                                              cache_id=(f"{learn.arch.timm_name}:{module_name}:{digest}"
                                                        if module_name == "features" else None),
                                              uint8_norm=(learn.data.val_tfms.mean, learn.data.val_tfms.std)
                                              if images and getattr(learn.data, "val_tfms", None) is not None
                                              else None,
                                              precision="fp32" if fp32 else "auto")
        return self.engines[key]

    def compute(self, loader, n_images: int, fp32: bool = False) -> np.ndarray:
        from ..features.engine import reading_ahead, run_engine

        learn = self.learner
        module = self.features_module()
        digest = self.body_digest()  # the pool has no weights: the body's (memoised) digest names the module
        if ("features", digest, fp32) in self.engines:
            return run_engine(self.engine("features", module, n_images, digest, fp32), loader, progress=learn.verbose)
        # the first pass builds the engine (ONNX export + compile, mostly on one core): decode meanwhile,
        # holding at most READ_AHEAD_BYTES of uint8 batches
        batch_bytes = 3 * learn.data.sz ** 2 * max(1, int(getattr(loader, "batch_size", None) or learn.data.bs))
        with reading_ahead(loader, depth=max(2, min(16, READ_AHEAD_BYTES // batch_bytes))) as early:
            engine = self.engine("features", module, n_images, digest, fp32)
            return run_engine(engine, early, progress=learn.verbose)

    def get(self, split: str, view: str = "clean", seed: int = 0) -> np.ndarray:
        """Pooled body activations of ``split`` ('train', 'valid', 'test') for a view, from the cache."""
        learn = self.learner
        ds = split_dataset(learn.data, split)
        if ds is None:
            raise ValueError(f"the data has no {split} set")
        key = self.key(split, view, seed)
        if key in self.acts:
            return self.acts[key]

        fp32 = split != "train"  # what is evaluated is computed as the fp32 export computes it

        def compute():
            loader = view_loader(learn.data, split, view, seed)
            if not distributed.is_distributed():
                if learn.keep_early_maps and view == "clean" and split in ("train", "valid"):
                    return learn._early.pooled_activations(split, loader)  # the early group's maps kept too
                return self.compute(loader, len(ds), fp32)
            # each rank runs its contiguous shard; all ranks get the whole array, in order
            return distributed.all_gather_array(self.compute(distributed.shard_loader(loader), len(ds), fp32))

        arr = distributed.cached_array(learn.cache, key, compute, meta={"arch": learn.arch.name, "split": split,
                                                                        "view": view, "n": len(ds)})
        self.acts[key] = arr
        return arr

    def precompute_all(self) -> None:
        """Compute (or read back) the clean activations of train, validation and test, and the augmented views."""
        learn = self.learner
        self.get("train")
        self.get("valid")
        if learn.data.test_ds is not None:
            self.get("test")
        for k in range(learn.precompute_aug):
            self.get("train", f"aug{k}")

    def train_batches(self, shuffle_seed: int):
        """One epoch of (activations, targets) batches for the head, sampling augmented views."""
        learn = self.learner
        clean = self.get("train")
        views = [clean] + [self.get("train", f"aug{k}") for k in range(learn.precompute_aug)]
        y = np.asarray(learn.data.trn_y)
        n, bs = len(clean), learn.data.bs
        rng = np.random.default_rng(shuffle_seed)
        order = rng.permutation(n)
        choice = rng.integers(0, len(views), size=n)
        n_batches = n // bs if n > bs else 1
        for b in range(n_batches):
            idx = np.sort(order[b * bs:(b + 1) * bs]) if n > bs else order
            if len(views) == 1:
                x = np.asarray(clean[idx], dtype=np.float32)
            else:
                x = np.stack([views[c][i] for i, c in zip(idx, choice[idx])]).astype(np.float32)
            yield torch.from_numpy(x), torch.from_numpy(np.asarray(y[idx]))
