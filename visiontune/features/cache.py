"""The activation cache: pooled backbone activations on disk, keyed by everything that changes them.

Each entry is a ``.npy`` file (memory-mapped on read) plus a ``.json`` sidecar that names its
key parts, shape and dtype. The key hashes: the backbone and a digest of its weights, the image
transforms (size, crop, normalisation), the split, the view (clean, or augmented view ``i`` with
its seed) and the file list with sizes and modification times. A changed dataset, network or size
therefore gets a new key: it is never served from a stale entry (the bug fastai 0.7's TODO admits).

Storage: float32 by default (exact); ``dtype="float16"`` halves the disk and memory footprint and
rounds values to about 3 significant digits, which a linear head does not notice.

Writes are atomic: the array goes to a temp file that is renamed into place, and the sidecar, written
last, is the commit marker. An entry without its sidecar (a crash mid-write), or whose array does not
match its sidecar, is never read: it is computed again, and temp files left by a killed run are removed.
Two runs sharing a cache are serialised per entry by a file lock, so the second one waits and then
reuses what the first wrote.

>>> import numpy as np, tempfile
>>> cache = ActivationCache(tempfile.mkdtemp())
>>> key = cache.key(arch="x", split="train")
>>> cache.get_or_compute(key, lambda: np.ones((2, 3), np.float32)).shape
(2, 3)
>>> float(cache.get_or_compute(key, lambda: 1 / 0).sum()), cache.computed, cache.hits
(6.0, 1, 1)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock

from ..utils.atomic import atomic_write, atomic_write_json

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$VISIONTUNE_CACHE`` or ``~/.cache/visiontune``."""
    root = os.environ.get("VISIONTUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "visiontune")
    return Path(root)


def fingerprint_files(entries) -> str:
    """Digest of a file list: (relative path, size, mtime_ns) for each file, in order."""
    h = hashlib.sha256()
    for entry in entries:
        h.update(json.dumps(list(entry)).encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


class ActivationCache:
    """Get-or-compute store of activation arrays under ``root``."""

    def __init__(self, root=None, dtype: str = "float32"):
        self.root = Path(root) if root is not None else default_cache_dir() / "activations"
        if dtype not in ("float32", "float16"):
            raise ValueError(f"cache dtype must be 'float32' or 'float16', not {dtype!r}")
        self.dtype = dtype
        self.computed = 0  # entries this object computed
        self.hits = 0  # entries this object read back

    def key(self, **parts) -> str:
        parts = {"format": FORMAT_VERSION, "dtype": self.dtype, **parts}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def load(self, key: str) -> np.ndarray | None:
        """The committed array for ``key`` (memory-mapped), or None."""
        arr_path, meta_path = self._paths(key)
        if not (arr_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arr = np.load(arr_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, json.JSONDecodeError):
            return None
        if list(arr.shape) != meta.get("shape") or str(arr.dtype) != meta.get("dtype"):
            return None
        return arr

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray], meta: dict | None = None) -> np.ndarray:
        """Return the cached array for ``key``, computing and storing it first if needed."""
        hit = self.load(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.root.mkdir(parents=True, exist_ok=True)
        arr_path, meta_path = self._paths(key)
        with FileLock(str(self.root / f"{key}.lock")):
            hit = self.load(key)  # another run may have written it while we waited
            if hit is not None:
                self.hits += 1
                return hit
            for stale in self.root.glob(f".{key}.*.tmp"):  # left by a run killed mid-write (we hold the lock)
                stale.unlink(missing_ok=True)
            arr = np.ascontiguousarray(compute(), dtype=self.dtype)
            with atomic_write(arr_path, "wb") as f:
                np.save(f, arr, allow_pickle=False)
            atomic_write_json(meta_path, {"shape": list(arr.shape), "dtype": str(arr.dtype), **(meta or {})})
            self.computed += 1
        return np.load(arr_path, mmap_mode="r", allow_pickle=False)

    def invalidate(self, key: str) -> None:
        for p in self._paths(key):
            p.unlink(missing_ok=True)
