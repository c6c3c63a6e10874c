"""Crash safety: SIGKILL while writing the activation cache, a full disk while writing checkpoints and
cache entries. The kill-and-resume training test is in test_kill_resume.py."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from visiontune.features.cache import ActivationCache
from visiontune.train.checkpoint import load_checkpoint, save_checkpoint
from visiontune.utils import atomic
from visiontune.utils.atomic import atomic_write_bytes, atomic_write_json

HERE = Path(__file__).resolve().parent
EXPECTED = np.arange(200_000, dtype=np.float32).reshape(1000, 200)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def start_and_kill(tmp_path, key, mode):
    root, ready = tmp_path / "cache", tmp_path / f"ready-{mode}"
    proc = subprocess.Popen([sys.executable, str(HERE / "vt_cache_child.py"), str(root), key, mode, str(ready)])
    return proc, root, ready


def wait_then_kill(proc, ready, timeout=120):
    t0 = time.monotonic()
    while not ready.exists():
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        assert time.monotonic() - t0 < timeout, "child never reached the write"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_cache_killed_mid_write_is_never_trusted(tmp_path):
    """kill -9 half way through the array, and again between the array and its sidecar: a new cache
    object finds nothing (load is None), recomputes, and the stale lock does not block it."""
    key = "k" * 32
    a = start_and_kill(tmp_path / "a", key, "npy")
    b = start_and_kill(tmp_path / "b", key, "sidecar")
    for proc, root, ready in (a, b):
        wait_then_kill(proc, ready)
    # mid-array: only a temp file exists; between array and sidecar: the array without its sidecar
    root_a, root_b = a[1], b[1]
    assert not (root_a / f"{key}.npy").exists() and leftovers(root_a)
    assert (root_b / f"{key}.npy").exists() and not (root_b / f"{key}.json").exists()
    for root in (root_a, root_b):
        cache = ActivationCache(root)
        assert cache.load(key) is None
        t0 = time.monotonic()
        out = cache.get_or_compute(key, lambda: EXPECTED.copy())
        assert time.monotonic() - t0 < 10  # the dead child's lock was released by the kernel
        assert cache.computed == 1 and cache.hits == 0
        np.testing.assert_array_equal(out, EXPECTED)
        assert ActivationCache(root).load(key) is not None
        assert leftovers(root) == []  # the killed run's temp file was cleaned up


def test_cache_entry_corrupted_on_disk_is_recomputed(tmp_path):
    cache = ActivationCache(tmp_path)
    key = cache.key(split="train")
    cache.get_or_compute(key, lambda: EXPECTED.copy())
    npy = tmp_path / f"{key}.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])  # truncated behind the cache's back
    fresh = ActivationCache(tmp_path)
    assert fresh.load(key) is None
    np.testing.assert_array_equal(fresh.get_or_compute(key, lambda: EXPECTED.copy()), EXPECTED)
    assert fresh.computed == 1


# ---- full disk ----------------------------------------------------------------------------------
class FullDisk:
    """Replace ``os.fdopen`` in the atomic writer so that the ``fail_on``-th file opened for writing
    takes ``room`` bytes and then raises ``OSError(ENOSPC)``, as a full disk does."""

    def __init__(self, monkeypatch, room: int = 100, fail_on: int = 1):
        self.room, self.fail_on, self.calls = room, fail_on, 0
        real = os.fdopen
        outer = self

        class Writer:
            def __init__(self, f, limited):
                self.f, self.limited, self.written = f, limited, 0

            def write(self, data):
                if self.limited and self.written + len(data) > outer.room:
                    self.f.write(data[: max(0, outer.room - self.written)])
                    self.f.flush()
                    raise OSError(errno.ENOSPC, "No space left on device")
                self.written += len(data)
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()
                return False

        def fdopen(fd, *a, **k):
            outer.calls += 1
            return Writer(real(fd, *a, **k), outer.calls == outer.fail_on)

        monkeypatch.setattr(atomic.os, "fdopen", fdopen)


def tiny_learner():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    return SimpleNamespace(model=model, state_dict=lambda: {"model": model.state_dict(), "sched_lrs": [], "sched_losses": [], "n_frozen": 2, "precompute": True}), model


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    learner, model = tiny_learner()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, learner, opt, [], epoch=1, iteration=10, epoch_base=7, logs=[{"epoch": 1}], finished=False)
    before = path.read_bytes()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    FullDisk(monkeypatch, room=1000)
    with pytest.raises(OSError) as ei:
        save_checkpoint(path, learner, opt, [], epoch=2, iteration=20, epoch_base=7, logs=[], finished=False)
    assert ei.value.errno == errno.ENOSPC
    assert str(ei.value) == (f"[Errno 28] cannot write {path}: the disk is full (no space left on device); the previous "
                             "version of the file, if any, is unchanged and no partial file was left")
    monkeypatch.undo()
    assert path.read_bytes() == before and leftovers(path.parent) == []
    assert load_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("fail_on", [1, 2], ids=["array", "sidecar"])
def test_full_disk_while_writing_the_cache_leaves_no_entry(tmp_path, monkeypatch, fail_on):
    cache = ActivationCache(tmp_path)
    key = cache.key(split="valid")
    FullDisk(monkeypatch, room=64 if fail_on == 1 else 10, fail_on=fail_on)
    with pytest.raises(OSError, match=r"cannot write .*\.(npy|json): the disk is full") as ei:
        cache.get_or_compute(key, lambda: EXPECTED.copy())
    assert ei.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert leftovers(tmp_path) == [] and not (tmp_path / f"{key}.json").exists()
    fresh = ActivationCache(tmp_path)
    assert fresh.load(key) is None  # (after the sidecar failed, the array alone is not trusted)
    np.testing.assert_array_equal(fresh.get_or_compute(key, lambda: EXPECTED.copy()), EXPECTED)


def test_full_disk_json_and_bytes_keep_previous_versions(tmp_path, monkeypatch):
    atomic_write_json(tmp_path / "metrics.json", {"epoch": 1})
    atomic_write_bytes(tmp_path / "w.bin", b"old")
    FullDisk(monkeypatch, room=3, fail_on=1)
    with pytest.raises(OSError, match="metrics.json: the disk is full"):
        atomic_write_json(tmp_path / "metrics.json", {"epoch": 2, "rows": list(range(100))})
    FullDisk(monkeypatch, room=0, fail_on=1)
    with pytest.raises(OSError, match="w.bin: the disk is full"):
        atomic_write_bytes(tmp_path / "w.bin", b"new content")
    monkeypatch.undo()
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"epoch": 1}
    assert (tmp_path / "w.bin").read_bytes() == b"old" and leftovers(tmp_path) == []


def test_other_errors_in_the_callers_block_pass_through_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        with atomic.atomic_write(tmp_path / "copy.bin") as f:
            f.write(open(tmp_path / "missing-source.bin", "rb").read())
    assert "cannot write" not in str(ei.value) and leftovers(tmp_path) == []
