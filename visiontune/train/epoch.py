"""One training epoch of a learner, the one runner that ``fit`` and ``lr_find`` share.

With ``precompute`` the head trains on batches of cached activations (:mod:`visiontune.train.activations`);
with ``cache_early`` the late group and the head train on cached early-group maps
(:mod:`visiontune.train.early_maps`); otherwise the model trains on images from the training loader (:mod:`visiontune.train.loaders`), under
DDP when launched by torchrun, compiled when ``compile=True``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from . import distributed
from .loop import train_one_epoch


class EpochRunner:
    """Runs epochs for a learner. It reads the learner's public attributes (``precompute``, ``head``,
    ``model``, ``n_frozen``, ``data``, ``crit``, ``device``, ``amp``, ``channels_last``, ``compile``)."""

    def __init__(self, learner, store, loaders, early=None):
        self.learner = learner
        self.store = store  # ActivationStore: the head's batches with precompute
        self.loaders = loaders  # TrainImages: the images' loader otherwise
        self.early = early  # EarlyMaps: the late model's batches with cache_early
        self._wrapped: tuple | None = None  # ((precompute, n_frozen), module run by the training step)

    def iters_per_epoch(self) -> int:
        learn = self.learner
        if learn.cache_early:
            return self.early.iters_per_epoch()
        if learn.precompute:
            n, bs = len(learn.data.trn_ds), learn.data.bs
            return n // bs if n > bs else 1
        return len(learn.data.trn_dl)

    def module(self) -> nn.Module:
        """What the training step runs: the head (on activations) or the model, under DDP when distributed
        (images only: the head on activations trains replicated, every rank running identical steps),
        compiled when ``compile=True``. Rebuilt when the trainable parameters change."""
        learn = self.learner
        key = (learn.precompute, learn.cache_early, learn.n_frozen)
        if self._wrapped is None or self._wrapped[0] != key:
            if learn.precompute:
                module = learn.head
            elif learn.cache_early:  # trains replicated on every rank, as the head on activations does
                module = self.early.late_model()
            else:
                module = distributed.ddp_wrap(learn.model, learn.device)
            self._wrapped = (key, torch.compile(module) if learn.compile else module)
        return self._wrapped[1]

    def loader(self, epoch_seed: int):
        learn = self.learner
        if learn.precompute:
            return list(self.store.train_batches(epoch_seed))
        if learn.cache_early:
            return self.early.train_batches(epoch_seed)
        return self.loaders.epoch(learn.data, epoch_seed, learn.device)

    def loss_reducer(self):
        """Under DDP each rank's loss covers its slice of the batch: log and check the mean over ranks."""
        learn = self.learner
        replicated = learn.precompute or learn.cache_early
        return distributed.all_reduce_mean if distributed.is_distributed() and not replicated else None

    def run(self, optimizer, base, mults, it: int, epoch_seed: int, set_train_mode: Callable[[], None],
            on_batch: Callable, progress=None) -> tuple[float, int, bool]:
        """One epoch from global iteration ``it``; returns (mean loss, next iteration, stopped)."""
        learn = self.learner
        set_mode = (lambda: learn.head.train()) if learn.precompute else set_train_mode
        module = self.module()
        return train_one_epoch(
            module, learn.crit, optimizer, self.loader(epoch_seed), base, mults, it, learn.device,
            amp=learn.amp and not learn.precompute, channels_last=learn.channels_last and not learn.precompute,
            set_train_mode=set_mode, on_batch_end=on_batch, progress=progress, reduce_loss=self.loss_reducer())
