"""Data-parallel training on PyTorch's own ``torch.distributed``, launched with ``torchrun``.

Launch any script that builds a :class:`~visiontune.train.learner.ConvLearner` (or ``visiontune
train``) with ``torchrun --nproc_per_node N script.py``; the learner calls :func:`init_distributed`
itself when ``WORLD_SIZE > 1`` is in the environment. Backends: ``nccl`` on CUDA, ``gloo`` on CPU.
Without torchrun every function here is a cheap no-op for a single process (rank 0 of 1).

What the learner does with these (see ``docs/scaling.md``):

* ``data.bs`` stays the **global** batch: each rank trains on its ``1/world`` slice of every batch
  (:class:`ShardedBatchSampler`), so the number of iterations per epoch, the learning-rate schedule
  and the checkpoints do not depend on the world size (a run resumes under another one);
* images are trained under ``DistributedDataParallel``; the head on precomputed activations is
  trained replicated (every rank holds all activations and runs identical steps);
* precompute, validation and TTA run each rank on a contiguous shard (:func:`shard_loader`) and
  :func:`all_gather_array` the outputs back in order, so every rank sees the full set;
* only rank 0 prints and writes files.

>>> world_size(), rank(), is_main_process()
(1, 0, True)
>>> all_gather_array(np.arange(3)).tolist()
[0, 1, 2]
>>> shard_range(10, rank=1, world=3)
(4, 7)
"""
from __future__ import annotations

import os
import random
from datetime import timedelta
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "world_size",
    "rank",
    "local_rank",
    "barrier",
    "all_gather_array",
    "broadcast_object",
    "all_reduce_mean",
    "all_ranks_agree",
    "broadcast_module_state",
    "sync_random_state",
    "shard_range",
    "shard_loader",
    "ShardedBatchSampler",
    "cached_array",
    "ddp_wrap",
    "default_device",
    "describe",
]


# ----------------------------------------------------------------------------- process group
def init_distributed(backend: str | None = None, timeout_s: float = 1800) -> bool:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_*``).

    Returns True when running distributed. A no-op (False) for a single process; idempotent.
    ``backend`` defaults to ``nccl`` when CUDA is available, else ``gloo``. On CUDA the current
    device becomes ``cuda:LOCAL_RANK``.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


_rank = rank  # for functions whose ``rank`` argument shadows the function


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on global rank 0 (and in a single process): the one rank that prints and writes files."""
    return rank() == 0


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    """Where tensors must live for a collective: the GPU for nccl, the CPU for gloo."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------------- collectives
def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank (pickled; for small objects: numbers, dicts, recorders)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=_comm_device() if dist.get_backend() == "nccl" else None)
    return box[0]


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """The mean of a scalar over all ranks (identical on every rank)."""
    if not is_distributed():
        return float(value)
    t = torch.as_tensor(value, dtype=torch.float64).detach().reshape(1).to(_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / world_size()


def all_ranks_agree(flag: bool) -> bool:
    """True only when ``flag`` is True on every rank."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([int(bool(flag))], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_gather_array(arr: np.ndarray) -> np.ndarray:
    """Concatenate every rank's ``arr`` along axis 0, in rank order; shards may differ in length (or be empty).

    All ranks must agree on the trailing shape and dtype, except that an empty shard may have any shape.
    """
    arr = np.asarray(arr)
    if not is_distributed():
        return arr
    metas = [None] * world_size()
    dist.all_gather_object(metas, (arr.shape, arr.dtype.str) if arr.size else None)
    full = [m for m in metas if m is not None]
    if not full:
        return arr.reshape(0, *arr.shape[1:])
    trailing, dtype = full[0][0][1:], np.dtype(full[0][1])
    if any(m[0][1:] != trailing or m[1] != dtype.str for m in full):
        raise ValueError(f"all_gather_array: ranks hold different trailing shapes or dtypes: {metas}")
    counts = [m[0][0] if m is not None else 0 for m in metas]
    rows = max(counts)
    local = np.zeros((rows, *trailing), dtype=dtype)
    if arr.size:
        local[:len(arr)] = arr
    # Move the raw bytes (any dtype, including float16 and bool, travels as uint8).
    send = torch.from_numpy(local.reshape(rows, -1).view(np.uint8).copy()).to(_comm_device())
    recv = [torch.empty_like(send) for _ in counts]
    dist.all_gather(recv, send)
    parts = [r.cpu().numpy().view(dtype).reshape(rows, *trailing)[:n] for r, n in zip(recv, counts)]
    return np.concatenate(parts)


def broadcast_module_state(module: nn.Module, src: int = 0, params: bool = True, buffers: bool = True) -> None:
    """Overwrite ``module``'s parameters and/or buffers with rank ``src``'s, in place."""
    if not is_distributed():
        return
    tensors = ([p.data for p in module.parameters()] if params else []) + ([b for b in module.buffers()] if buffers else [])
    device = _comm_device()
    with torch.no_grad():
        for t in tensors:
            if t.device == device:
                dist.broadcast(t, src=src)
            else:
                tmp = t.detach().to(device)
                dist.broadcast(tmp, src=src)
                t.copy_(tmp)


def sync_random_state(src: int = 0) -> None:
    """Give every rank rank ``src``'s torch, numpy and Python RNG states (so seeded choices agree)."""
    if not is_distributed():
        return
    state = broadcast_object((torch.get_rng_state(), np.random.get_state(), random.getstate()), src=src)
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


# ----------------------------------------------------------------------------- sharding
def shard_range(n: int, rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """``[start, stop)`` of this rank's contiguous shard of ``n`` items (sizes differ by at most one)."""
    r = _rank() if rank is None else rank
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def shard_loader(loader):
    """An ordered ``Loader`` over this rank's contiguous shard of ``loader``'s dataset (same batch size,
    transforms, workers). ``all_gather_array`` of the outputs restores the full set in order."""
    from ..data.loader import Loader

    start, stop = shard_range(len(loader.dataset))
    bs = loader.batch_size
    batches = [list(range(i, min(i + bs, stop))) for i in range(start, stop, bs)]
    return Loader(loader.dataset, bs, num_workers=loader.num_workers, normalizer=loader.normalizer,
                  batch_sampler=batches, pin_memory=getattr(loader, "pin_memory", False),
                  threaded=getattr(loader, "threaded", False))


class ShardedBatchSampler:
    """This rank's part of every global batch: the same shuffled batches as one process would draw.

    Each epoch (``set_epoch(seed)``) all ranks draw the same permutation of ``range(n)`` from
    ``seed``, cut it into global batches of ``batch_size`` (the last partial one dropped when
    ``drop_last``), and rank ``r`` takes the ``r``-th of ``world`` near-equal contiguous slices of each.
    Every rank therefore runs the same number of steps, and the steps per epoch do not depend on
    the world size.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, rank: int | None = None,
                 world: int | None = None):
        self.n, self.batch_size, self.drop_last = int(n), int(batch_size), bool(drop_last)
        self.rank = _rank() if rank is None else rank
        self.world = world_size() if world is None else world
        if self.batch_size < self.world:
            raise ValueError(f"the batch size ({self.batch_size}) is the global batch under torchrun and must be "
                             f"at least the number of processes ({self.world}); raise bs")
        self.seed = 0

    def set_epoch(self, seed: int) -> None:
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=g).tolist()
        for b in range(len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            start, stop = shard_range(len(batch), self.rank, self.world)
            yield batch[start:stop]


# ----------------------------------------------------------------------------- the activation cache
def cached_array(cache, key: str, compute, meta: dict | None = None) -> np.ndarray:
    """``cache.get_or_compute`` for a process group: computed once across ranks, written once by rank 0.

    ``compute`` is collective (every rank calls it; each computes its shard and gathers the whole
    array). When every rank can read the entry it is used as is; otherwise all ranks compute and
    rank 0 alone writes the entry (others skip writing: with the cache on a shared filesystem
    there is one file, with node-local caches other nodes recompute their shards next time).
    Every rank returns the same values, in the cache's dtype.
    """
    if not is_distributed():
        return cache.get_or_compute(key, compute, meta)
    local = cache.load(key)
    if all_ranks_agree(local is not None):
        cache.hits += 1
        return local
    arr = compute()
    if is_main_process():
        arr = cache.get_or_compute(key, lambda: arr, meta)
    else:
        arr = np.ascontiguousarray(arr, dtype=cache.dtype)
    barrier()
    return arr


def ddp_wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` over ``module`` (its trainable parameters), or ``module`` itself
    when not distributed. Buffers are not broadcast at every step: the learner copies rank 0's
    buffers after each epoch (:func:`broadcast_module_state`)."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    import inspect

    params = inspect.signature(DistributedDataParallel).parameters
    no_step_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=device_ids, **no_step_sync)


def describe() -> str:
    """``'rank 1 of 4 (gloo)'``, or ``'single process'``."""
    if not is_distributed():
        return "single process"
    return f"rank {rank()} of {world_size()} ({dist.get_backend()})"
