"""Partial fine-tuning: the late layer group and the head train on cached output maps of the early group.

``learn.precompute = True`` caches the *pooled* activations of the whole body, so only the head trains.
``learn.cache_early = True`` caches one step earlier: the early layer group (frozen) runs once over the
training and validation images, its output maps are kept in memory, and ``fit`` trains the late
group and the head on them (each training map mirrored at random, the map of the mirrored image at a
fraction of its cost). An epoch then costs a forward and backward pass of the late group only: on
efficientnet_lite0 at 224 px on 2 CPU cores about 1/5 of an unfrozen epoch (cifar10_6k: ~46 s against ~230 s;
docs/scaling.md, "The unfrozen budget").

>>> learn.freeze_to(1)          # doctest: +SKIP
>>> learn.cache_early = True    # doctest: +SKIP
>>> learn.fit([1e-3 / 3, 1e-3], 1)  # doctest: +SKIP

The store reads the learner's public attributes (``data``, ``body``, ``pool``, ``head``, ``device``) and
uses its activation store's engines, so the early group's pass runs on the same engine as ``precompute``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import distributed
from .loaders import view_loader

MAPS_MEMORY_SHARE = 0.25
"""The maps may take at most this share of the memory available when they are computed."""
MIN_BATCH = 64
"""Batches of maps hold at least this many images. Measured on cifar10_6k (2,000 images, SGD, rates 1e-3 and
3e-3): at the recipe's 32 the late group's gradient norm grew from ~15 to ~100+ within an epoch and validation
accuracy fell from 0.75 to 0.21-0.55; at 64 it stayed ~5 and accuracy rose to 0.76-0.77, at the same speed."""


def early_late(body) -> tuple[nn.Sequential, nn.Sequential]:
    """The body as two sequential parts, (early group, late group). Raises ``ValueError`` when running them
    one after the other does not give the body's output (a model whose forward is not its modules in order)."""
    early, late = body.split_groups()
    early_seq, late_seq = nn.Sequential(*early), nn.Sequential(*late)
    was_training = body.training
    body.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        x = x.to(next(body.parameters()).device)
        same = torch.allclose(late_seq(early_seq(x)), body(x), atol=1e-4, rtol=1e-3)
    body.train(was_training)
    if not same:
        raise ValueError(f"{body.arch.name}: running its layer groups in order does not give the body's output; "
                         "partial fine-tuning (cache_early) needs a body that is its modules in sequence")
    return early_seq, late_seq


def map_shape(early: nn.Module, size: int) -> tuple[int, ...]:
    """(C, h, w) of the early group's output map for one ``size`` px image (the group's modes are kept)."""
    modes = [m.training for m in early.modules()]
    early.eval()
    with torch.no_grad():
        shape = early(torch.zeros(1, 3, size, size, device=next(early.parameters()).device)).shape[1:]
    for m, mode in zip(early.modules(), modes):
        m.training = mode
    return tuple(int(v) for v in shape)


class EarlyMaps:
    """The early group's output maps of the training (clean view) and validation images, for the current early
    weights, and the late model (late group, pool, head) that trains on them."""

    def __init__(self, learner):
        self.learner = learner
        self.maps: dict[str, torch.Tensor] = {}  # split -> (N, C, h, w): train bfloat16, valid float32
        self._digest: str | None = None
        self._memo: tuple | None = None  # (cheap weights key, digest) of the early group
        self._parts: tuple | None = None

    def parts(self) -> tuple[nn.Sequential, nn.Sequential]:
        if self._parts is None or self._parts[0] is not self.learner.body:
            self._parts = (self.learner.body, *early_late(self.learner.body))
        return self._parts[1], self._parts[2]

    def late_model(self) -> nn.Module:
        """Late group, pooling and head: what trains on the maps (the same module objects as the model's)."""
        learn = self.learner
        return nn.Sequential(self.parts()[1], learn.pool, learn.head)

    def clear(self) -> None:
        self.maps.clear()
        self._digest = None

    def _early_digest(self, early: nn.Module) -> str:
        """The early group's weights digest, rehashed only when a tensor changed (as ActivationStore does)."""
        from ..features.engines_base import _weights_key
        from ..models.digest import weights_digest

        key = _weights_key(early)
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, weights_digest(early))
        return self._memo[1]

    def get(self, split: str) -> torch.Tensor:
        """The maps of ``split`` ('train' or 'valid'), computed once per early-group weights."""
        learn = self.learner
        early, _ = self.parts()
        digest = self._early_digest(early)
        if digest != self._digest:
            self.maps.clear()
            self._digest = digest
        if split not in self.maps:
            ds = {"train": learn.data.trn_ds, "valid": learn.data.val_ds}[split]
            loader = view_loader(learn.data, split, "clean", 0)
            # validation maps as the fp32 export computes them; training maps may use bf16 where fast
            engine = learn._store.engine(f"early-{split}", early, len(ds), digest, fp32=split == "valid")
            from ..features.engine import run_engine

            if distributed.is_distributed():
                arr = distributed.all_gather_array(run_engine(engine, distributed.shard_loader(loader)))
            else:
                arr = run_engine(engine, loader, progress=learn.verbose)
            # training maps in bfloat16 (half the memory); validation maps in float32, so that the clean view's
            # outputs are the fp32 model's (the TTA and the export agree with them)
            self.maps[split] = torch.from_numpy(arr).to(torch.bfloat16 if split == "train" else torch.float32)
        return self.maps[split]

    @property
    def bs(self) -> int:
        return max(MIN_BATCH, int(self.learner.data.bs))

    def iters_per_epoch(self) -> int:
        n = len(self.learner.data.trn_ds)
        return n // self.bs if n > self.bs else 1

    def train_batches(self, epoch_seed: int):
        """One epoch of (maps, targets) batches, shuffled by ``epoch_seed``, each map mirrored with p=0.5."""
        learn = self.learner
        maps = self.get("train")
        y = torch.from_numpy(np.asarray(learn.data.trn_y))
        n, bs = len(maps), self.bs
        g = torch.Generator().manual_seed(int(epoch_seed) % 2**63)
        order = torch.randperm(n, generator=g)
        flip = torch.rand(n, generator=g) < 0.5
        n_batches = n // bs if n > bs else 1
        for b in range(n_batches):
            idx = order[b * bs:(b + 1) * bs] if n > bs else order
            x = maps[idx].float()
            f = flip[idx]
            x[f] = x[f].flip(3)
            yield x, y[idx]

    @torch.no_grad()
    def outputs(self, split: str, bs: int = 256) -> np.ndarray:
        """The model's outputs on ``split`` from its maps (eval mode, fp32)."""
        learn = self.learner
        model = self.late_model()
        was_training = [m.training for m in model]
        model.eval()
        maps = self.get(split)
        out = [model(maps[i:i + bs].float().to(learn.device)).float().cpu() for i in range(0, len(maps), bs)]
        for m, t in zip(model, was_training):
            m.train(t)
        return torch.cat(out).numpy() if out else np.zeros((0, learn.data.c), np.float32)
