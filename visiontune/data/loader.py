"""The loader: batches of ``(x, y)``, ``x`` float32 NCHW normalised per batch with the transforms'
mean/std (images travel from workers as uint8); ``y`` int64 class indexes, float32 multi-hot
(multi-label) or float32 (regression).
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from visiontune.transforms.augment import item_random_state
from visiontune.transforms.core import ImageTransforms

__all__ = ["Loader", "default_num_workers"]


def default_num_workers() -> int:
    """Loader worker processes by default: ``min(4, cpu count)``."""
    return min(4, os.cpu_count() or 1)


class Loader:
    """A thin wrapper over ``torch.utils.data.DataLoader`` that normalises each batch.

    Items travel as uint8 (small, fast to pickle between worker processes); each assembled batch is
    converted to float32 and normalised with ``normalizer.normalize``. Feature arrays are batched
    in-process by fancy indexing. Attributes: ``dataset``, ``batch_size``, ``len(loader)`` batches.
    ``own_rng=True`` (fixed order, deterministic transforms): iterating never draws on torch's global RNG.

    ``threaded`` (default: ``own_rng``): decode with a pool of ``num_workers`` threads in this process,
    prefetching two batches, instead of worker processes. Random transforms then need
    ``transform.item_seedable``: each item runs under ``item_random_state(base + index)``, with
    ``base`` drawn from torch's generator when iteration starts, so a seeded pass gives the same
    views whatever order the threads run in. PIL decodes and resizes without the
    GIL, and a thread pool starts at once where each pass over worker processes pays for starting
    them and filling their queues: on 2 CPU cores a clean pass over hymenoptera's 398 images into
    OpenVINO ran 104-108 images/s with 2 threads against 55-87 with 2 worker processes.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 num_workers: int = 0, normalizer: ImageTransforms | None = None, persistent: bool = False,
                 batch_sampler=None, pin_memory: bool | None = None, own_rng: bool = False,
                 threaded: bool | None = None):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.normalizer = normalizer
        self.batch_sampler = batch_sampler  # lists of indexes (e.g. one rank's shard under torchrun)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.device = None  # set by with_device(): batches go there as uint8 and are normalised there
        self._fast = hasattr(dataset, "get_batch") and not getattr(dataset, "is_images", True)
        self.num_workers = 0 if self._fast else int(num_workers)
        self._dl = None
        self.threaded = (own_rng if threaded is None else bool(threaded)) and not self._fast and self.num_workers > 0
        if not self._fast and not self.threaded:
            order = dict(batch_sampler=batch_sampler) if batch_sampler is not None else dict(
                batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last)
            # Every DataLoader iterator draws a seed from its generator (torch's global one by default).
            # Loaders with a fixed order and deterministic transforms (validation, fix, test) get their own,
            # so reading them or not (activations served from the cache) never shifts the training RNG:
            # the same seed gives the same run whether the activation cache is cold or warm.
            self._dl = DataLoader(dataset, **order, num_workers=self.num_workers, pin_memory=self.pin_memory,
                                  persistent_workers=persistent and self.num_workers > 0,
                                  generator=torch.Generator().manual_seed(0) if own_rng else None)

    def with_device(self, device) -> "Loader":
        """This loader (same workers) yielding ``x`` already on ``device``: on CUDA the uint8 batch is copied
        from pinned memory without blocking and normalised on the GPU (4x fewer bytes than float32)."""
        import copy

        dl = copy.copy(self)
        dl.device = torch.device(device) if device is not None and torch.device(device).type != "cpu" else None
        return dl

    def __len__(self) -> int:
        if self._dl is not None:
            return len(self._dl)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _index_batches(self):
        if self.batch_sampler is not None:
            return self.batch_sampler
        sampler = RandomSampler(self.dataset) if self.shuffle else SequentialSampler(self.dataset)
        return BatchSampler(sampler, self.batch_size, self.drop_last)

    def _batches(self):
        """An iterator over the batches. Random draws that fix a pass (worker seeds, the per-item seed base)
        happen here, in the caller's thread, even when another thread reads the batches."""
        if self._dl is not None:
            return iter(self._dl)
        if self.threaded:
            return self._threaded_batches(iter(list(self._index_batches())), self._item_fn())
        return (self.dataset.get_batch(idxs) for idxs in self._index_batches())

    def _item_fn(self):
        """``i -> dataset[i]``; with random transforms, each item draws from its own seed (base + i)."""
        if not getattr(getattr(self.dataset, "transform", None), "train", False):
            return self.dataset.__getitem__
        base = int(torch.randint(0, 2**62, ()).item())

        def item(i, _get=self.dataset.__getitem__):
            with item_random_state(base + int(i)):
                return _get(i)

        return item

    def _threaded_batches(self, index_batches, item, ahead: int = 2):
        """The batches of ``index_batches`` in order, items decoded by a thread pool that works ``ahead``
        batches in advance."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        from torch.utils.data import default_collate

        pending: deque = deque()
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="visiontune-decode") as pool:
            try:
                while True:
                    while len(pending) <= ahead:
                        idxs = next(index_batches, None)
                        if idxs is None:
                            break
                        pending.append([pool.submit(item, i) for i in idxs])
                    if not pending:
                        return
                    yield default_collate([f.result() for f in pending.popleft()])
            finally:
                for futures in pending:
                    for f in futures:
                        f.cancel()

    def unnormalized(self):
        """The batches as they are assembled: ``x`` uint8 NCHW for images (float32 for feature arrays),
        not yet normalised; ``normalizer`` says how. On the CPU only (ignores :meth:`with_device`)."""
        return self._batches()

    def __iter__(self):
        for x, y in self._batches():
            if self.device is not None:
                x = x.to(self.device, non_blocking=True)
            if x.dtype == torch.uint8:
                x = self.normalizer.normalize(x) if self.normalizer is not None else x.float().div_(255.0)
            elif x.dtype != torch.float32:
                x = x.float()
            yield x, y

    def __repr__(self) -> str:
        return (f"Loader({len(self.dataset)} items, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"num_workers={self.num_workers}{', threaded' if self.threaded else ''})")
