"""Child process for the cache kill test: ``python vt_cache_child.py CACHE_DIR KEY MODE READY_FILE``.

Computes a cache entry and stops (sleeping, to be killed with SIGKILL) at a chosen moment:

* ``MODE=npy``: half way through writing the array (the temp file holds half of it);
* ``MODE=sidecar``: after the array is renamed into place, before the ``.json`` sidecar is written.

``READY_FILE`` is created at that moment so the parent knows when to kill. The cache module is
imported without ``visiontune/__init__`` (which imports torch) to keep the child quick to start.
"""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "visiontune"
for name, sub in (("visiontune", PKG), ("visiontune.features", PKG / "features")):
    mod = types.ModuleType(name)
    mod.__path__ = [str(sub)]
    sys.modules[name] = mod

import numpy as np  # noqa: E402

import visiontune.features.cache as cache_mod  # noqa: E402


def main(root, key, mode, ready):
    ready = Path(ready)
    real_save = np.save

    def slow_save(f, arr, allow_pickle=False):
        import io

        buf = io.BytesIO()
        real_save(buf, arr, allow_pickle=allow_pickle)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        ready.write_text("writing")
        time.sleep(120)
        f.write(data[len(data) // 2:])

    def slow_json(path, obj):
        ready.write_text("sidecar")
        time.sleep(120)

    if mode == "npy":
        cache_mod.np.save = slow_save
    else:
        cache_mod.atomic_write_json = slow_json
    cache = cache_mod.ActivationCache(root)
    cache.get_or_compute(key, lambda: np.arange(200_000, dtype=np.float32).reshape(1000, 200))


if __name__ == "__main__":
    main(*sys.argv[1:])
