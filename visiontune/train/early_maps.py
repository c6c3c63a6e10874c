"""Partial fine-tuning: the late layer group and the head train on cached output maps of the early group.

``learn.precompute = True`` caches the *pooled* activations of the whole body, so only the head trains.
``learn.cache_early = True`` caches one step earlier: the early layer group (frozen) runs once over the
training and validation images, its output maps are kept in memory, and ``fit`` trains the late
group and the head on them (each training map mirrored at random, the map of the mirrored image at a
fraction of its cost). The late group's costliest gradients are left out (:func:`keep_pretrained`: its
depthwise kernels and what runs before the first of them). An epoch then costs a forward and backward pass
of the rest of the late group only: on efficientnet_lite0 at 224 px on 2 CPU cores about 1/15 of an
unfrozen epoch (cifar10_6k: ~14 s against ~200 s; docs/scaling.md, "The unfrozen budget").

With ``learn.keep_early_maps = True`` (the recipe sets it in step 1 where partial fine-tuning may follow),
``precompute`` itself runs the early group once, keeps its maps, and computes the pooled activations from
them on an engine of the late group; ``cache_early`` then needs no second pass over the images. Under
``cache_early`` the TTA views run the early group on the validation maps' fp32 engine and the late model on
its own fp32 engine.

>>> learn.cache_early = True    # doctest: +SKIP
>>> learn.fit([1e-3 / 9, 1e-3 / 3, 1e-3], 1)  # doctest: +SKIP

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


def depthwise_convs(module: nn.Module) -> list[nn.Conv2d]:
    """The depthwise convolutions in ``module`` (one filter per channel: ``groups == in_channels > 1``)."""
    return [m for m in module.modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]


def keep_pretrained(late: nn.Module) -> list[nn.Parameter]:
    """Turn off the gradients that cost most and buy least in partial fine-tuning; returns the parameters kept.

    Kept as pretrained: the depthwise kernels of the late group, and every parameter up to and including the
    first of them (in registration order, which is the order they run in for timm's and torchvision's blocks),
    so the backward pass stops at the first depthwise convolution's output. A late group without depthwise
    convolutions (ResNets) trains whole.

    Measured on 2 CPU cores (torch 2.14 with oneDNN; efficientnet_lite0's late group, ``blocks.5`` on, on
    cifar10_6k maps, batches of 64):

    - a 5x5 depthwise convolution over 1152 channels at 7x7 costs ~2 ms forward, ~5 ms for its input's gradient
      and ~65-80 ms for its kernel's gradient in bfloat16 (~38 ms in float32); the four depthwise kernels'
      gradients took ~70% of a training step (344 of 502 ms);
    - the first block's stride-2 depthwise convolution costs ~80 ms more for its input's gradient (bfloat16),
      needed only to train the expansion convolution before it;
    - a training step: everything trains 124-140 img/s; depthwise kernels kept 291 img/s; and the first
      expansion too ~380 img/s (one epoch 13-15 s instead of 37-46 s);
    - accuracy after one epoch (head-only 0.778): everything trains 0.817; depthwise kernels kept 0.807;
      and the first expansion too 0.811 (0.831 after two epochs). The kept tensors are ~8% of the group's weights.
    """
    dws = depthwise_convs(late)
    if not dws:
        return []
    params = list(late.parameters())
    first = next(i for i, p in enumerate(params) if p is dws[0].weight)
    kept = list({id(p): p for p in params[:first + 1] + [p for conv in dws for p in conv.parameters()]}.values())
    for p in kept:
        p.requires_grad_(False)
    return kept


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
        if not self._current(split):
            self._compute(split, view_loader(self.learner.data, split, "clean", 0))
        return self.maps[split]

    def ready(self) -> bool:
        """Whether the training and validation maps of the current early weights are in memory."""
        return self._current("train") and self._current("valid")

    def _current(self, split: str) -> bool:
        """Whether ``split``'s maps are those of the current early weights (stale maps are dropped)."""
        digest = self._early_digest(self.parts()[0])
        if digest != self._digest:
            self.maps.clear()
            self._digest = digest
        return split in self.maps

    def _engine(self, split: str, n_images: int):
        # validation (and test) maps as the fp32 export computes them; training maps may use bf16 where fast
        early = self.parts()[0]
        return self.learner._store.engine(f"early-{split}", early, n_images, self._early_digest(early),
                                          fp32=split != "train")

    def _compute(self, split: str, loader) -> np.ndarray:
        """Run the early group over ``loader`` and keep the maps; returns them as float32."""
        from ..features.engine import run_engine

        learn = self.learner
        engine = self._engine(split, len(loader.dataset))
        if distributed.is_distributed():
            arr = distributed.all_gather_array(run_engine(engine, distributed.shard_loader(loader)))
        else:
            arr = run_engine(engine, loader, progress=learn.verbose)
        # training maps in bfloat16 (half the memory); validation maps in float32, so that the clean view's
        # outputs are the fp32 model's (the TTA and the export agree with them)
        self.maps[split] = torch.from_numpy(arr).to(torch.bfloat16 if split == "train" else torch.float32)
        return arr

    def pooled_activations(self, split: str, loader) -> np.ndarray:
        """Precompute's pooled body activations of ``split``, computed through the maps, which are kept: the
        early group runs once for precompute and partial fine-tuning (``learn.keep_early_maps``). The late
        group and the pool run on an engine of their own (bf16 where fast for training, fp32 otherwise)."""
        learn = self.learner
        maps = self.get(split).float().numpy() if self._current(split) else self._compute(split, loader)
        return self._late_outputs("late-features", nn.Sequential(self.parts()[1], learn.pool), maps,
                                  fp32=split != "train", width=0)

    def view_outputs(self, split: str, loader) -> np.ndarray:
        """The model's outputs over ``loader`` (a TTA view's images) in fp32: the early group on the engine
        that computed ``split``'s maps, then the late model on its own engine."""
        from ..features.engine import run_engine

        maps = run_engine(self._engine(split, len(loader.dataset)), loader)
        return self._late_outputs("late-model", self.late_model(), maps, fp32=True, width=self.learner.data.c)

    def outputs(self, split: str) -> np.ndarray:
        """The model's outputs on ``split`` from its maps (fp32, as the export computes them)."""
        return self._late_outputs("late-model", self.late_model(), self.get(split).float().numpy(), fp32=True,
                                  width=self.learner.data.c)

    def _late_outputs(self, name: str, module: nn.Module, maps: np.ndarray, fp32: bool, width: int) -> np.ndarray:
        """``module`` (the late group onwards) over ``maps`` on a forward engine (rebuilt when its weights
        change: ~0.3 s for efficientnet_lite0's late group, against ~3 s for 1,000 maps in torch on 2 cores);
        ``width``: the outputs' width when there are no maps."""
        from ..features.engine import run_engine

        learn = self.learner
        if len(maps) == 0:
            return np.zeros((0, width), np.float32)
        engine = learn._store.engine(name, module, len(maps), fp32=fp32, input_shape=tuple(maps.shape[1:]))
        bs = max(1, int(learn.data.bs))
        return run_engine(engine, [(torch.from_numpy(maps[i:i + bs]), None) for i in range(0, len(maps), bs)])

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
