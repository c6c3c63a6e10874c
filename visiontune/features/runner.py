"""Running an engine over a loader (:func:`run_engine`, :func:`reading_ahead`) and measuring engines."""
from __future__ import annotations

import contextlib
import time
import warnings
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..utils.errors import first_line
from .engines_base import Engine, _module_device
from .factory import _check_kind, available_engines, create_engine


def _batch_input(batch) -> torch.Tensor:
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, dict):
        return batch["x"] if "x" in batch else batch["image"]
    return batch


def _loader_batches(loader):
    """An iterator over ``loader``'s batches as an engine takes them: a visiontune Loader's uint8 batches
    (its ``normalizer`` says how to normalise them; engines do it inside their graph), else what it yields."""
    raw = getattr(loader, "unnormalized", None)
    return iter(raw() if raw is not None and getattr(loader, "normalizer", None) is not None else loader)


class _ReadAhead:
    """The batches of a loader, read by a background thread into a bounded queue (see :func:`reading_ahead`)."""

    def __init__(self, loader, depth: int):
        import queue
        import threading

        self.dataset = getattr(loader, "dataset", None)
        self.normalizer = getattr(loader, "normalizer", None)
        try:
            self._n_batches = len(loader)
        except TypeError:
            self._n_batches = None
        self._source = _loader_batches(loader)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="visiontune-read-ahead", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        import queue

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for batch in self._source:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the reader, raised there
            put(("error", e))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (cancelling its decode jobs) runs here, in its thread

    def __len__(self) -> int:
        if self._n_batches is None:
            raise TypeError("the loader read ahead has no length")
        return self._n_batches

    def __iter__(self):
        for x, y in self.unnormalized():
            if self.normalizer is not None and x.dtype == torch.uint8:
                x = self.normalizer.normalize(x)
            yield x, y

    def unnormalized(self):
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        import queue

        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


@contextlib.contextmanager
def reading_ahead(loader, depth: int = 16):
    """``loader``'s batches, decoded ahead by a background thread (at most ``depth`` batches kept) while
    the block does something else, for example building an engine: the ONNX export runs mostly on one
    core, so on a 2-core CPU decoding can use the other. Give what it yields to :func:`run_engine`
    in place of the loader; it can be read once.
    With a ``normalizer`` the thread reads the loader's uint8 batches and ``run_engine`` normalises.

    >>> import torch
    >>> from torch import nn
    >>> loader = [(torch.full((2, 3, 1, 1), float(i)), torch.zeros(2)) for i in range(5)]
    >>> with reading_ahead(loader, depth=2) as early:
    ...     engine = create_engine(nn.Flatten(), "torch", example_input_shape=(1, 3, 1, 1))
    ...     out = run_engine(engine, early)
    >>> out[:, 0].tolist()
    [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
    """
    early = _ReadAhead(loader, depth)
    try:
        yield early
    finally:
        early.close()


def run_engine(
    engine: Engine,
    loader: Iterable,
    out: np.ndarray | None = None,
    dtype=np.float32,
    progress: bool = False,
    timings: dict | None = None,
) -> np.ndarray:
    """Run every batch of ``loader`` (``(x, y)`` pairs, x float32 normalised NCHW) through ``engine``.

    Returns the outputs stacked in loader order, as ``dtype``. ``out`` (for example a
    ``np.memmap`` of the activation cache) receives the rows in place and is returned (cut
    to the rows written); it must have room for every image. Without ``out`` the array is
    allocated once when the loader's dataset length is known.

    ``timings``, when given, is updated with seconds summed over the run (added to any
    values already there, so several runs accumulate): ``load_s`` (waiting for the loader:
    decoding and transforms), ``forward_s`` (the engine), ``write_s`` (copying into the
    result), ``total_s``, plus ``n_images``, ``n_batches`` and ``img_per_s``.
    """
    try:
        n_expected = len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        n_expected = None
    if out is not None and n_expected is not None and len(out) < n_expected:
        raise ValueError(f"out has room for {len(out)} rows but the loader yields {n_expected} images")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        try:
            total = len(loader)  # type: ignore[arg-type]
        except TypeError:
            total = None
        bar = tqdm(total=total, desc=f"forward ({engine.kind})", unit="batch", leave=False, disable=None)  # quiet when not a TTY

    load_s = forward_s = write_s = 0.0
    written = n_batches = 0
    chunks: list[np.ndarray] = []
    start = time.perf_counter()
    # A visiontune Loader hands over its uint8 batches and their normalisation: the engine applies it
    norm = getattr(loader, "normalizer", None)
    iterator = _loader_batches(loader)
    try:
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            x = _batch_input(batch)
            t1 = time.perf_counter()
            y = (engine.normalized(x, norm.mean, norm.std) if x.dtype == torch.uint8 and norm is not None
                 else engine(x.float())).numpy()
            t2 = time.perf_counter()
            if out is None and n_expected is not None:
                out = np.empty((n_expected, *y.shape[1:]), dtype=dtype)
            if out is not None:
                if written + len(y) > len(out):
                    raise ValueError(f"out has room for {len(out)} rows but the loader yielded more")
                out[written:written + len(y)] = y
            else:
                chunks.append(y.astype(dtype, copy=False))
            written += len(y)
            n_batches += 1
            t3 = time.perf_counter()
            load_s += t1 - t0
            forward_s += t2 - t1
            write_s += t3 - t2
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    total_s = time.perf_counter() - start

    if out is None:
        result = np.concatenate(chunks) if chunks else np.empty((0,), dtype=dtype)
    else:
        result = out if written == len(out) else out[:written]
    if timings is not None:
        for name, value in (("load_s", load_s), ("forward_s", forward_s), ("write_s", write_s),
                            ("total_s", total_s), ("n_images", written), ("n_batches", n_batches)):
            timings[name] = timings.get(name, 0) + value
        timings["img_per_s"] = timings["n_images"] / timings["total_s"] if timings["total_s"] > 0 else 0.0
    return result


def measure_engines(
    module: nn.Module,
    batch: torch.Tensor,
    kinds: Iterable[str] | None = None,
    repeats: int = 3,
    *,
    warmup: int = 1,
    build_s: dict | None = None,
) -> dict[str, float]:
    """Pure forward speed of each engine on ``batch``: ``{kind: images per second}`` (best of ``repeats``).

    ``kinds`` defaults to :func:`available_engines`. A kind that cannot be built here is
    left out with a warning. ``build_s``, when given, receives each kind's export/compile
    time plus its first (warm-up) call, in seconds.
    """
    kinds = list(kinds) if kinds is not None else available_engines(_module_device(module))
    results: dict[str, float] = {}
    for kind in kinds:
        _check_kind(kind)
        t0 = time.perf_counter()
        try:
            engine = create_engine(module, kind, example_input_shape=tuple(batch.shape), strict=True)
            for _ in range(max(warmup, 1)):
                engine(batch)
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"visiontune: skipping engine {kind!r}: {type(e).__name__}: {first_line(e)}",
                          RuntimeWarning, stacklevel=2)
            continue
        if engine.kind != kind:  # torch.compile failed at its first call and fell back
            engine.close()
            continue
        if build_s is not None:
            build_s[kind] = time.perf_counter() - t0
        best = float("inf")
        for _ in range(max(repeats, 1)):
            t = time.perf_counter()
            engine(batch)
            best = min(best, time.perf_counter() - t)
        results[kind] = batch.shape[0] / best
        engine.close()
    return results
