"""Data sources with the lesson's names: folders, a labels CSV, or in-memory arrays.

>>> get_cv_idxs(10)  # rows 8 and 9 of np.random.seed(42); np.random.permutation(10)
array([3, 6])

``ImageClassifierData`` holds the datasets and loaders the learner uses:

* ``trn_dl`` (shuffled, training transforms), ``val_dl`` (validation transforms),
* ``fix_dl``: the *training* images with *validation* transforms, in order (for precomputing activations),
* ``aug_dl``: the *validation* images with *training* transforms (fastai 0.7's meaning: used for TTA and
  to look at augmentations), ``test_dl`` / ``test_aug_dl`` likewise for the test folder.

Loaders yield ``(x, y)``: ``x`` float32 NCHW, normalised per batch with the transforms' mean/std (images
travel from workers as uint8); ``y`` int64 class indexes, float32 multi-hot (multi-label) or float32
(regression).

Unreadable files are found when the data is built, not mid-epoch: every file is decoded once (in
parallel, draft mode, results cached by path/size/mtime). By default they are skipped with one
``SkippedFilesWarning`` listing each file and reason (also kept in ``data.skipped``); ``strict=True``
raises :class:`UnreadableFilesError` naming them. A file that breaks *after* the data was built
(deleted, overwritten, permissions changed) never ends an epoch: a blank mean-colour image stands in
for it, with one ``FileChangedWarning`` naming it (``strict=True``: the ``ImageLoadError`` is raised).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from visiontune.transforms.augment import item_random_state
from visiontune.transforms.core import ImageTransforms, imagenet_stats, tfms_from_stats

from ..imaging.decode import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageLoadError, open_image, probe_images
from ..utils.text import nfc, printable

__all__ = [
    "ImageClassifierData",
    "FilesDataset",
    "ArraysDataset",
    "Loader",
    "get_cv_idxs",
    "default_num_workers",
    "SkippedFilesWarning",
    "FileChangedWarning",
    "ClassesWarning",
    "SizeTooLargeError",
    "UnreadableFilesError",
]

DEFAULT_SZ = 224
RESIZE_MANIFEST = ".visiontune-resize.json"
_MAX_LISTED = 100  # files named one by one in the skip warning / error


def default_num_workers() -> int:
    """Loader worker processes by default: ``min(4, cpu count)``."""
    return min(4, os.cpu_count() or 1)


def get_cv_idxs(n: int, cv_idx: int = 4, val_pct: float = 0.2, seed: int = 42) -> np.ndarray:
    """Indexes of the validation rows: fold ``cv_idx`` of a seeded permutation of ``range(n)``.

    Exactly fastai 0.7's behaviour, including that it seeds numpy's global generator, except that a
    fold that does not fit in ``n`` rows (fastai silently returned fewer rows, or none) and a
    ``val_pct`` outside (0, 1) raise a ``ValueError``:

    >>> get_cv_idxs(10, cv_idx=4, val_pct=0.3)
    Traceback (most recent call last):
    ...
    ValueError: get_cv_idxs: fold cv_idx=4 of val_pct=0.3 (3 rows a fold) does not fit in n=10 rows: ...
    """
    if isinstance(val_pct, bool) or not isinstance(val_pct, (int, float, np.integer, np.floating)) \
            or not np.isfinite(val_pct) or not 0 < val_pct < 1:
        raise ValueError(f"get_cv_idxs: val_pct must be a number strictly between 0 and 1 (the fraction of rows "
                         f"for validation, e.g. 0.2), got {val_pct!r}")
    if isinstance(cv_idx, bool) or not isinstance(cv_idx, (int, np.integer)) or cv_idx < 0:
        raise ValueError(f"get_cv_idxs: cv_idx must be an int >= 0 (which fold), got {cv_idx!r}")
    n_val = int(val_pct * n)
    idx_start = cv_idx * n_val
    if n_val > 0 and idx_start + n_val > n:
        folds = n // n_val
        raise ValueError(
            f"get_cv_idxs: fold cv_idx={cv_idx} of val_pct={val_pct} ({n_val} rows a fold) does not fit in "
            f"n={n} rows: it would start at row {idx_start} and end at {idx_start + n_val}. "
            f"cv_idx must be in 0..{folds - 1} for this val_pct (the default cv_idx=4 is fastai's fifth fold, "
            f"which always fits for val_pct <= 0.2)")
    np.random.seed(seed)
    idxs = np.random.permutation(n)
    return idxs[idx_start:idx_start + n_val]


class SkippedFilesWarning(UserWarning):
    """Some files could not be used as images and were left out of the data."""


class FileChangedWarning(UserWarning):
    """A file that decoded when the data was built failed to load mid-epoch; a blank image stood in for it."""


class UnreadableFilesError(ValueError):
    """Raised with ``strict=True`` when some files cannot be used; ``.skipped`` lists (relpath, reason)."""

    def __init__(self, skipped: Sequence[tuple[str, str]], root=None):
        self.skipped = list(skipped)
        where = f" under {root}" if root is not None else ""
        super().__init__(
            f"{len(self.skipped)} file(s){where} cannot be used as images (strict=True):\n"
            + _list_skipped(self.skipped)
            + "\nFix or delete them, or build the data without strict=True to skip them."
        )


def _shown(name) -> str:
    """A file name printable in any terminal: undecodable bytes (non-UTF-8 names) shown as ``\\xff``, control
    characters (ESC sequences, newlines) escaped by :func:`visiontune.utils.text.printable`."""
    return printable(str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def _list_skipped(skipped) -> str:
    lines = [f"  {_shown(f)}: {_shown(r)}" for f, r in skipped[:_MAX_LISTED]]
    if len(skipped) > _MAX_LISTED:
        lines.append(f"  ... and {len(skipped) - _MAX_LISTED} more (see data.skipped)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------
def _as_targets(y, kind: str) -> np.ndarray:
    y = np.asarray(y)
    return y.astype(np.int64) if kind == "single" else y.astype(np.float32)


class FilesDataset(Dataset):
    """Image files under ``path``; ``ds[i] -> (uint8 CHW tensor, target tensor)``.

    ``fnames`` are posix paths relative to ``path`` (``'train/ants/x.jpg'``).
    """

    def __init__(self, path, fnames: Sequence[str], y, transform: ImageTransforms, kind: str = "single",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, strict: bool = False):
        if len(fnames) != len(y):
            raise ValueError(f"{len(fnames)} file names but {len(y)} targets")
        self.strict = bool(strict)
        self.failed: dict[str, str] = {}  # relpath -> reason, for files that stopped decoding after the scan
        self.path = Path(path)
        self.fnames = list(fnames)
        self.kind = kind
        self.y = _as_targets(y, kind)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.fnames)

    def get_x(self, i: int) -> Image.Image:
        # Random training views may decode big JPEGs in draft mode (fast; exact pixels do not matter there);
        # deterministic views (validation, test, fix) decode at full size, exactly as predict and
        # ExportedModel do, so the numbers a run records are the numbers predict gives.
        draft = self.transform.min_side if getattr(self.transform, "train", False) else None
        return open_image(self.path / self.fnames[i], draft=draft, max_pixels=self.max_pixels)

    def __getitem__(self, i: int):
        try:
            x = self.get_x(i)
        except ImageLoadError as e:
            if self.strict:
                raise
            x = self._placeholder(i, e)
        return self.transform(x), torch.as_tensor(self.y[i])

    def _placeholder(self, i: int, err: ImageLoadError) -> Image.Image:
        """A file that decoded when the data was built but fails now (deleted, replaced, permissions).

        One bad file must not end an epoch: the item becomes a flat image of the transforms' mean
        colour (zero after normalisation), keeping its target and position, and one
        :class:`FileChangedWarning` names the file (once per file and process; ``data.trn_ds.failed``
        lists them). ``strict=True`` raises the :class:`ImageLoadError` instead.
        """
        name = self.fnames[i]
        if name not in self.failed:
            self.failed[name] = err.reason
            warnings.warn(f"visiontune: {_shown(str(self.path / name))}: {_shown(err.reason)}; it could be read when the data was "
                          "built, so it changed since. Using a blank (mean-colour) image for it in this pass. "
                          "Rebuild the data to leave it out.", FileChangedWarning, stacklevel=2)
        mean = getattr(self.transform, "mean", None) or (0.5, 0.5, 0.5)
        side = max(1, int(getattr(self.transform, "min_side", None) or self.transform.sz))
        return Image.new("RGB", (side, side), tuple(int(round(255 * float(m))) for m in mean))

    @property
    def sz(self) -> int:
        return self.transform.sz

    def denorm(self, x) -> np.ndarray:
        """Normalised NCHW batch (or CHW image) -> displayable NHWC (HWC) float numpy in [0, 1]."""
        return self.transform.denorm(x)

    def file_fingerprint(self) -> list[tuple[str, int, int]]:
        """``[(relpath, size, mtime_ns)]`` for every file, in order; missing files give ``(relpath, -1, -1)``."""
        out = []
        for f in self.fnames:
            try:
                st = os.stat(self.path / f)
                out.append((f, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((f, -1, -1))
        return out

    def with_transform(self, transform: ImageTransforms) -> "FilesDataset":
        ds = FilesDataset(self.path, self.fnames, self.y, transform, self.kind, self.max_pixels, self.strict)
        ds.failed = self.failed  # same files: warn once for all views of them
        return ds

    def with_root(self, path) -> "FilesDataset":
        return FilesDataset(path, self.fnames, self.y, self.transform, self.kind, self.max_pixels, self.strict)

    def __repr__(self) -> str:
        return f"FilesDataset({len(self)} files under {self.path}, {self.transform!r})"


class ArraysDataset(Dataset):
    """In-memory (or memory-mapped) arrays.

    ``x`` of shape ``(N, H, W, 3)`` uint8 is treated as images (``transform`` applies, items are uint8
    CHW tensors); anything else (e.g. precomputed activations, ``(N, D)`` float) is returned as float32
    tensors with no transform, and loaders batch it by fancy indexing.
    """

    def __init__(self, x, y, transform: ImageTransforms | None = None, kind: str = "single"):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
            x = np.asarray(x)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x = x
        self.kind = kind
        self.y = _as_targets(y, kind)
        self.is_images = len(x.shape) == 4 and x.shape[-1] == 3 and np.dtype(x.dtype) == np.uint8
        self.transform = transform if self.is_images else None
        if self.is_images and transform is None:
            raise ValueError("image arrays (N, H, W, 3) uint8 need transforms")
        self.fnames: list[str] = []
        self.path = None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        if self.is_images:
            return self.transform(Image.fromarray(np.asarray(self.x[i]))), torch.as_tensor(self.y[i])
        return torch.as_tensor(np.asarray(self.x[i], dtype=np.float32)), torch.as_tensor(self.y[i])

    def get_batch(self, idxs) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectorised batch for feature arrays (no per-row Python work)."""
        idxs = np.asarray(idxs)
        x = np.asarray(self.x[idxs], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(self.y[idxs]))

    @property
    def sz(self):
        return self.transform.sz if self.transform is not None else None

    def denorm(self, x) -> np.ndarray:
        if self.transform is None:
            raise ValueError("denorm needs image data; this dataset holds feature arrays")
        return self.transform.denorm(x)

    def file_fingerprint(self) -> list:
        return []

    def with_transform(self, transform) -> "ArraysDataset":
        return ArraysDataset(self.x, self.y, transform if self.is_images else None, self.kind)

    def __repr__(self) -> str:
        what = "images" if self.is_images else "features"
        return f"ArraysDataset({len(self)} rows of {what}, x shape {tuple(self.x.shape)})"


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# helpers for building
# ---------------------------------------------------------------------------------------------
def _resolve_tfms(tfms) -> tuple[ImageTransforms, ImageTransforms]:
    if tfms is None:
        tfms = (None, None)
    if isinstance(tfms, ImageTransforms) or not isinstance(tfms, (tuple, list)) or len(tfms) != 2:
        raise TypeError("tfms must be a (train_tfms, val_tfms) pair, as returned by tfms_from_model(arch, sz)")
    trn, val = tfms
    if trn is None and val is None:
        return tfms_from_stats(imagenet_stats, DEFAULT_SZ)
    return (trn if trn is not None else val), (val if val is not None else trn)


def _list_images(folder: Path) -> list[str]:
    """Names of image files directly in ``folder`` (hidden files and other suffixes ignored), sorted."""
    names = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if Path(e.name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                if e.is_dir():
                    continue
            except OSError:
                pass  # a broken link or loop: keep it so the probe reports why
            names.append(e.name)
    return sorted(names)


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


class UnicodeNamesWarning(UserWarning):
    """Class folder names were not in Unicode NFC; the classes are named in NFC."""


def _class_folders(folder: Path) -> dict[str, str]:
    """``{class name: folder name}`` for the class folders in ``folder``, class names in Unicode NFC.

    ``é`` typed as one code point or as ``e`` + a combining accent look the same: they are one class (named
    in NFC, with one warning). Two folders whose names differ only that way are refused, naming both.
    """
    out: dict[str, str] = {}
    renamed = []
    for name in _subdirs(folder):
        key = nfc(name)
        if key in out:
            raise ValueError(f"{_shown(folder)} holds two class folders whose names look identical: "
                             f"{out[key]!a} and {name!a} (the same letters, composed and decomposed Unicode); "
                             "merge them into one folder")
        out[key] = name
        if key != name:
            renamed.append((name, key))
    if renamed:
        warnings.warn(f"visiontune: class folder name(s) in {_shown(folder)} are not in Unicode NFC: "
                      + ", ".join(f"{a!a} is named {b!a}" for a, b in renamed[:10])
                      + (f" and {len(renamed) - 10} more" if len(renamed) > 10 else "")
                      + " (NFC, so the same name typed either way is one class)", UnicodeNamesWarning, stacklevel=4)
    return out


def _resolve_val_name(root: Path, val_name: str) -> str:
    if (root / val_name).is_dir():
        return val_name
    if val_name == "valid" and (root / "val").is_dir():
        return "val"
    raise FileNotFoundError(
        f"no validation folder {root / val_name}; folders in {root}: {_subdirs(root) if root.is_dir() else []}. "
        f"Pass val_name= (--val-name) the folder holding the validation images (e.g. val_name='val')."
    )


def _check_root(path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    return root


def _rel(*parts: str) -> str:
    return PurePosixPath(*parts).as_posix()


def id_key(name: str) -> str:
    """The file a CSV id names, as one spelling: ``im0``, ``./im0``, ``.//im0`` and ``a\\im0`` vs ``a/im0``
    are the same file, so the duplicate check compares these keys (a file listed twice would
    otherwise sit in both the training and the validation rows).

    >>> [id_key(s) for s in ("im0", "./im0", ".//im0", "a/./b", "a" + chr(92) + "b")]
    ['im0', 'im0', 'im0', 'a/b', 'a/b']
    """
    return PurePosixPath(name.replace("\\", "/")).as_posix()


def _safe_relative(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return False
    first = p.parts[0]
    return not (len(first) >= 2 and first[1] == ":")  # a Windows drive (C:)


def _leaving_folder(root: Path, folder: str, fnames: Sequence[str]) -> list[int]:
    """Indexes of ``fnames`` (relative to ``root``, under ``folder``) whose real path (symbolic links
    followed, as ``os.path.realpath`` / ``Path.resolve()`` does) is not inside the real ``root / folder``.

    Each directory is resolved once; a file is resolved again only if it is itself a link, so a big
    CSV costs about one ``lstat`` a row. Missing files resolve to where they would be (they are
    reported as missing later); a dangling link that points outside counts as leaving.
    """
    base = os.path.realpath(root / folder)
    inside = base.rstrip(os.sep) + os.sep
    dirs: dict[str, str] = {}
    out = []
    for i, f in enumerate(fnames):
        full = os.path.join(root, *PurePosixPath(f).parts)
        parent, name = os.path.split(full)
        real_parent = dirs.get(parent)
        if real_parent is None:
            real_parent = dirs[parent] = os.path.realpath(parent)
        real = os.path.join(real_parent, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if real != base and not real.startswith(inside):
            out.append(i)
    return out


def _suffix_hint(images: Path, ids: Sequence[str], suffix: str, rows: int = 20) -> str | None:
    """When none of the first ``rows`` ids has a file but a changed ``suffix`` would find them: what to pass."""
    head = [s for s in ids[:rows] if s]
    if not head or any((images / (s + suffix)).exists() for s in head):
        return None
    if suffix and all(s.endswith(suffix) for s in head) and any((images / s).exists() for s in head):
        return f"the ids already end in {suffix!r}: drop the suffix (suffix='', or no --suffix)"
    for ext in sorted(IMAGE_EXTENSIONS):
        if any((images / (s + ext)).exists() for s in head):
            return f"the files are named <id>{ext}: pass suffix={ext!r} (--suffix {ext})"
    return None


class SizeTooLargeError(ValueError):
    """The image size and batch size need more memory than the machine has (checked before any image is read)."""


def available_memory() -> int | None:
    """Bytes of memory this process can still get: the system's available memory, lowered to what the
    cgroup (container) limit leaves; ``None`` when unknown."""
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported here: ask the OS
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:  # cgroup v2: memory.max - memory.current
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int((cg / "memory.current").read_text().strip())
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


_BATCH_MEMORY_FACTOR = 10
"""A batch needs at least its float32 input and the first layers' activations: ~10 times the input."""


def batch_memory_bytes(sz: int, bs: int) -> int:
    """A lower bound of the memory one training batch needs: ``bs x 3 x sz x sz`` float32 values, times
    :data:`_BATCH_MEMORY_FACTOR` (the uint8 and normalised copies and the first layers' activations).

    >>> batch_memory_bytes(224, 64) / 1e6   # 224 px, 64 images: ~385 MB (fine anywhere)
    385.35168
    >>> batch_memory_bytes(100_000, 32) / 1e12  # 100,000 px: ~38 TB
    38.4
    """
    return int(bs) * 3 * int(sz) ** 2 * 4 * _BATCH_MEMORY_FACTOR


def check_size_fits(sz: int, bs: int, available: int | None = None) -> None:
    """Raise :class:`SizeTooLargeError` when one batch of ``bs`` images of ``sz`` pixels cannot fit in
    ``available`` bytes (default: :func:`available_memory`), instead of being killed for memory later."""
    need = batch_memory_bytes(sz, bs)
    avail = available_memory() if available is None else available
    if avail is None or need <= avail:
        return
    raise SizeTooLargeError(
        f"image size {sz} with batch size {bs} needs at least {_gb(need)} of memory for one batch "
        f"({bs} x 3 x {sz} x {sz} float32 values and the first layers' activations), but {_gb(avail)} is "
        "available: use a smaller --size (sz; 224 is usual) or a smaller --bs")


def _gb(n: int) -> str:
    return f"{n / 1e12:.1f} TB" if n >= 1e12 else f"{n / 1e9:.1f} GB"


class ClassesWarning(UserWarning):
    """The training classes cannot all be learned: a class without usable images, or only one class."""


def _check_classes(root: Path, classes: Sequence, trn_y: np.ndarray, val_y: np.ndarray | None = None) -> None:
    """Single-label data: warn (one line each) about classes without training images, a lone class, and
    classes without a validation image."""
    counts = np.bincount(np.asarray(trn_y, dtype=np.int64), minlength=len(classes))
    empty = [str(c) for c, n in zip(classes, counts) if n == 0]
    usable = [str(c) for c, n in zip(classes, counts) if n > 0]
    if len(usable) < 2:
        warnings.warn(
            f"visiontune: only one class with usable training images under {_shown(root)} ({usable[0]!r}"
            + (f"; none in {empty}" if empty else "") + "): a classifier needs at least two classes to learn "
            "anything (from_paths expects path/train/<class>/<images>, one folder per class).",
            ClassesWarning, stacklevel=4)
    elif empty:
        warnings.warn(f"visiontune: class(es) with no usable training images: {_some(empty)}; the model can never "
                      "predict them. Add images or remove those class folders.", ClassesWarning, stacklevel=4)
    if val_y is None or not len(val_y) or not len(classes):
        return
    val_counts = np.bincount(np.asarray(val_y, dtype=np.int64), minlength=len(classes))
    no_val = [str(c) for c, n in zip(classes, val_counts) if n == 0]
    if no_val:
        warnings.warn(f"visiontune: {len(no_val)} of {len(classes)} classes have no validation image, "
                      f"{_some(no_val)}: their accuracy is never measured. Give every class at least one "
                      "validation image (more images per class, or a valid/<class>/ folder for each).",
                      ClassesWarning, stacklevel=4)


def _some(names: Sequence[str], limit: int = 10) -> str:
    """At most ``limit`` names, then how many more: a warning stays one short line for 10,000 classes."""
    shown = "[" + ", ".join(repr(n) for n in names[:limit]) + "]"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _filter_readable(root: Path, splits: dict, strict: bool, max_pixels) -> tuple[dict, list]:
    """Probe every file of every split at once; drop unreadable ones (or raise under strict)."""
    order = [(name, i) for name, (fn, _) in splits.items() for i in range(len(fn))]
    all_files = [splits[name][0][i] for name, i in order]
    reasons = probe_images([root / f for f in all_files], max_pixels=max_pixels)
    bad = {order[k]: r for k, r in enumerate(reasons) if r is not None}
    skipped = [(all_files[k], r) for k, r in enumerate(reasons) if r is not None]
    if skipped and strict:
        raise UnreadableFilesError(skipped, root)
    if skipped:
        warnings.warn(
            f"visiontune: skipped {len(skipped)} of {len(all_files)} file(s) under {_shown(root)} that cannot be used "
            f"as images (strict=True makes this an error; the list is in data.skipped):\n" + _list_skipped(skipped),
            SkippedFilesWarning,
            stacklevel=4,
        )
    out = {}
    for name, (fn, y) in splits.items():
        keep = [i for i in range(len(fn)) if (name, i) not in bad]
        out[name] = ([fn[i] for i in keep], y[keep] if len(fn) else y)
    return out, skipped


# ---------------------------------------------------------------------------------------------
# ImageClassifierData
# ---------------------------------------------------------------------------------------------
class ImageClassifierData:
    """Training, validation and optional test data, with the loaders built from them.

    Build it with :meth:`from_paths`, :meth:`from_csv` or :meth:`from_arrays`. Attributes:
    ``path`` (str), ``classes``, ``c``, ``is_multi``, ``is_reg``, ``sz``, ``bs``, ``trn_ds``, ``val_ds``,
    ``test_ds``, ``trn_dl``, ``val_dl``, ``fix_dl``, ``aug_dl``, ``test_dl``, ``test_aug_dl``, ``trn_y``,
    ``val_y``, ``skipped`` ([(relpath, reason)] of files left out), ``trn_tfms``, ``val_tfms``.
    """

    def __init__(self, path, trn_ds, val_ds, test_ds=None, *, classes: Sequence, bs: int = 64,
                 tfms=(None, None), num_workers: int | None = None, is_multi: bool = False, is_reg: bool = False,
                 skipped: Sequence[tuple[str, str]] = ()):
        self.path = os.fspath(path)
        self.classes = list(classes)
        self.is_multi = bool(is_multi)
        self.is_reg = bool(is_reg)
        self.bs = int(bs)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.trn_tfms, self.val_tfms = _resolve_tfms(tfms)
        self.trn_ds, self.val_ds, self.test_ds = trn_ds, val_ds, test_ds
        self.skipped = list(skipped)

        nw = self.num_workers
        trn_norm, val_norm = self.trn_tfms, self.val_tfms
        self.trn_dl = Loader(trn_ds, self.bs, shuffle=True, drop_last=len(trn_ds) > self.bs, num_workers=nw,
                             normalizer=trn_norm, persistent=True)
        self.val_dl = Loader(val_ds, self.bs, num_workers=nw, normalizer=val_norm, persistent=True, own_rng=True)
        self.fix_dl = Loader(trn_ds.with_transform(self.val_tfms), self.bs, num_workers=nw, normalizer=val_norm,
                             own_rng=True)
        self.aug_dl = Loader(val_ds.with_transform(self.trn_tfms), self.bs, num_workers=nw, normalizer=trn_norm)
        if test_ds is not None:
            self.test_dl = Loader(test_ds, self.bs, num_workers=nw, normalizer=val_norm, own_rng=True)
            self.test_aug_dl = Loader(test_ds.with_transform(self.trn_tfms), self.bs, num_workers=nw,
                                      normalizer=trn_norm)
        else:
            self.test_dl = self.test_aug_dl = None

    # -- lesson attributes -----------------------------------------------------------------------
    @property
    def c(self) -> int:
        """Number of outputs the head needs: classes (single/multi-label), or 1 (regression)."""
        if self.is_reg:
            y = self.trn_ds.y
            return int(y.shape[1]) if y.ndim == 2 else 1
        return len(self.classes)

    @property
    def sz(self):
        return self.trn_ds.sz

    @property
    def trn_y(self) -> np.ndarray:
        return self.trn_ds.y

    @property
    def val_y(self) -> np.ndarray:
        return self.val_ds.y

    def __repr__(self) -> str:
        kind = "regression" if self.is_reg else "multi-label" if self.is_multi else "single-label"
        test = f", {len(self.test_ds)} test" if self.test_ds is not None else ""
        return (f"ImageClassifierData({self.path!r}, {kind}, {len(self.classes)} classes, "
                f"{len(self.trn_ds)} train, {len(self.val_ds)} valid{test}, sz={self.sz}, bs={self.bs})")

    # -- builders ----------------------------------------------------------------------------------
    @classmethod
    def _from_files(cls, root: Path, splits: dict, *, classes, kind: str, tfms, bs, num_workers, strict,
                    max_pixels, extra_skipped=()) -> "ImageClassifierData":
        trn_tfms, val_tfms = _resolve_tfms(tfms)
        check_size_fits(max(trn_tfms.sz, val_tfms.sz), bs)  # before any file is read
        splits, skipped = _filter_readable(root, splits, strict, max_pixels)
        if not splits["trn"][0]:
            raise ValueError(f"no usable training images under {root} (skipped: {len(skipped)})")
        if kind == "single":
            _check_classes(root, classes, splits["trn"][1], splits["val"][1])

        def ds(name, t):
            fn, y = splits[name]
            return FilesDataset(root, fn, y, t, kind, max_pixels, strict)

        test = ds("test", val_tfms) if "test" in splits else None
        return cls(root, ds("trn", trn_tfms), ds("val", val_tfms), test, classes=classes, bs=bs,
                   tfms=(trn_tfms, val_tfms), num_workers=num_workers, is_multi=kind == "multi",
                   is_reg=kind == "reg", skipped=list(extra_skipped) + skipped)

    @classmethod
    def from_paths(cls, path, bs: int = 64, tfms=(None, None), trn_name: str = "train", val_name: str = "valid",
                   test_name: str | None = None, num_workers: int | None = None, strict: bool = False,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> "ImageClassifierData":
        """Images in one folder per class: ``path/train/<class>/*``, ``path/valid/<class>/*``.

        If ``val_name='valid'`` (the default) does not exist but ``path/val`` does, ``val`` is used.
        ``test_name`` names an optional folder of unlabelled images (``path/test/*``).
        Classes are the sorted sub-folder names of the training folder. Only files with an image
        suffix (``IMAGE_EXTENSIONS``) are listed; hidden files are ignored. Unreadable files are skipped
        with one warning (``strict=True``: :class:`UnreadableFilesError`).
        ``tfms=(None, None)`` uses 224-pixel transforms with ImageNet mean/std.
        """
        root = _check_root(path)
        trn_dir = root / trn_name
        if not trn_dir.is_dir():
            raise FileNotFoundError(
                f"no training folder {trn_dir}; from_paths expects {root}/{trn_name}/<class>/<images>. "
                f"Folders in {root}: {_subdirs(root)}"
            )
        val_name = _resolve_val_name(root, val_name)
        trn_folders = _class_folders(trn_dir)
        classes = sorted(trn_folders)
        if not classes:
            raise ValueError(
                f"no class folders in {trn_dir}: from_paths needs one sub-folder per class "
                f"(labels in a CSV? use ImageClassifierData.from_csv)"
            )
        val_folders = _class_folders(root / val_name)
        extra = sorted(set(val_folders) - set(classes))
        if extra:
            raise ValueError(f"validation folder {_shown(root / val_name)} has classes missing from "
                             f"{_shown(trn_dir)}: {_some(extra)}")

        def items(split, folders):
            fn, y = [], []
            for ci, c in enumerate(classes):
                if c not in folders or not (root / split / folders[c]).is_dir():
                    continue
                names = _list_images(root / split / folders[c])
                fn += [_rel(split, folders[c], n) for n in names]
                y += [ci] * len(names)
            return fn, np.asarray(y, dtype=np.int64)

        splits = {"trn": items(trn_name, trn_folders), "val": items(val_name, val_folders)}
        if test_name is not None:
            splits["test"] = _test_items(root, test_name, "single")
        return cls._from_files(root, splits, classes=classes, kind="single", tfms=tfms, bs=bs,
                               num_workers=num_workers, strict=strict, max_pixels=max_pixels)

    @classmethod
    def from_csv(cls, path, folder: str, csv_fname, bs: int = 64, tfms=(None, None), val_idxs=None,
                 suffix: str = "", test_name: str | None = None, continuous: bool = False, skip_header: bool = True,
                 num_workers: int | None = None, strict: bool = False,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> "ImageClassifierData":
        """Images in ``path/folder``, labels in a CSV: first column the file id, second the label.

        * one label a row: single-label; space-separated tags: multi-label (``is_multi``, multi-hot
          float targets; a row with no tags is allowed there and means "none of the classes");
          ``continuous=True``: numbers, regression (``is_reg``). Further columns are ignored.
        * the file for a row is ``path/folder/<id><suffix>``; ids must stay inside ``folder``
          (absolute paths and ``..`` are refused, naming the row).
        * ``csv_fname`` is a path, or a name relative to ``path``. BOM and CRLF are fine;
          ``skip_header=False`` when the first row is data.
        * ``val_idxs``: row numbers (0-based, header excluded) of the validation rows, e.g.
          ``get_cv_idxs(n)``; ``None`` uses ``get_cv_idxs(number of rows)``.
        * rows are checked before any image is read: duplicate ids, empty ids or labels (single-label),
          non-numeric values (continuous) are errors naming the rows.
        * **a row whose file is missing or unreadable** is skipped, after the train/validation split,
          and reported in the one summary warning and ``data.skipped``; ``strict=True`` raises
          :class:`UnreadableFilesError` instead.
        """
        root = _check_root(path)
        csv_path = Path(csv_fname)
        if not csv_path.is_absolute() and not csv_path.exists():
            csv_path = root / csv_path
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"image folder {root / folder} does not exist; folders in {root}: {_subdirs(root)}")
        ids, labels = read_label_csv(csv_path, skip_header)
        n = len(ids)
        bad = [i for i, s in enumerate(ids) if not _safe_relative(s + suffix)]
        if bad:
            raise ValueError(
                f"{csv_path.name}: file id(s) pointing outside the {folder!r} folder, refused: "
                + ", ".join(f"row {i} (line {_line(i, skip_header)}) {ids[i]!r}" for i in bad[:10])
                + ". Ids must be file names relative to the image folder."
            )
        fnames = [PurePosixPath(folder, (s + suffix).replace("\\", "/")).as_posix() for s in ids]
        escaping = _leaving_folder(root, folder, fnames)
        if escaping:
            raise ValueError(
                f"{csv_path.name}: file id(s) whose path leaves the {folder!r} folder through a symbolic link, "
                "refused: " + ", ".join(f"row {i} (line {_line(i, skip_header)}) {ids[i]!r}" for i in escaping[:10])
                + (f" and {len(escaping) - 10} more" if len(escaping) > 10 else "")
                + f". Only files inside {root / folder} are read: copy the images into it (or point path/folder "
                "at where they really are)."
            )
        hint = _suffix_hint(root / folder, ids, suffix)
        if hint:
            raise ValueError(f"{csv_path.name}: no file {root / fnames[0]} for row 0 (nor for the next rows); {hint}")
        kind, classes, y = _parse_labels(csv_path.name, labels, continuous, skip_header)

        if val_idxs is None:
            val_idxs = get_cv_idxs(n)
        val_idxs = np.asarray(val_idxs)
        if val_idxs.size and (not np.issubdtype(val_idxs.dtype, np.integer) or val_idxs.min() < 0
                              or val_idxs.max() >= n):
            raise ValueError(f"val_idxs must be row numbers in [0, {n}) of {csv_path.name}; "
                             f"got values from {val_idxs.min()} to {val_idxs.max()}")
        if len(np.unique(val_idxs)) != len(val_idxs):
            raise ValueError("val_idxs holds repeated row numbers")
        is_val = np.zeros(n, dtype=bool)
        is_val[val_idxs.astype(np.int64)] = True
        trn_i, val_i = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        splits = {"trn": ([fnames[i] for i in trn_i], y[trn_i]), "val": ([fnames[i] for i in val_i], y[val_i])}
        if test_name is not None:
            splits["test"] = _test_items(root, test_name, kind, y)
        return cls._from_files(root, splits, classes=classes, kind=kind, tfms=tfms, bs=bs, num_workers=num_workers,
                               strict=strict, max_pixels=max_pixels)

    @classmethod
    def from_arrays(cls, path, trn, val, bs: int = 64, tfms=(None, None), classes=None, test=None,
                    num_workers: int | None = None, is_multi: bool | None = None,
                    is_reg: bool | None = None) -> "ImageClassifierData":
        """In-memory data: ``trn = (x, y)``, ``val = (x, y)``, ``test = x`` (optional).

        ``x`` is ``(N, H, W, 3)`` uint8 images (transformed like files) or any other array, e.g.
        precomputed activations ``(N, D)`` float: those are returned as float32 tensors, untransformed,
        and batched in-process (``num_workers`` is not used for them: indexing memory is faster).
        ``y``: int class indexes (single-label), 2-D 0/1 (multi-label) or float (regression); override
        the guess with ``is_multi`` / ``is_reg``. ``classes`` defaults to ``range(c)``.
        """
        (x_trn, y_trn), (x_val, y_val) = trn, val
        y_trn, y_val = np.asarray(y_trn), np.asarray(y_val)
        if is_reg is None:
            is_reg = bool(np.issubdtype(y_trn.dtype, np.floating)) and not (
                y_trn.ndim == 2 and np.isin(y_trn, (0, 1)).all() and is_multi is not False)
        if is_multi is None:
            is_multi = not is_reg and y_trn.ndim == 2
        kind = "reg" if is_reg else "multi" if is_multi else "single"
        if classes is None:
            if kind == "multi":
                classes = list(range(y_trn.shape[1]))
            elif kind == "single":
                top = max(int(y_trn.max(initial=-1)), int(y_val.max(initial=-1)))
                classes = list(range(top + 1))
            else:
                classes = []
        trn_tfms, val_tfms = _resolve_tfms(tfms)
        trn_ds = ArraysDataset(x_trn, y_trn, trn_tfms, kind)
        val_ds = ArraysDataset(x_val, y_val, val_tfms, kind)
        test_ds = None
        if test is not None:
            ty_shape = (len(test),) + y_trn.shape[1:]
            test_ds = ArraysDataset(test, np.zeros(ty_shape, dtype=y_trn.dtype), val_tfms, kind)
        return cls(path, trn_ds, val_ds, test_ds, classes=classes, bs=bs, tfms=(trn_tfms, val_tfms),
                   num_workers=num_workers, is_multi=kind == "multi", is_reg=kind == "reg")

    # -- resize ------------------------------------------------------------------------------------
    def resize(self, targ: int, new_path: str = "tmp", max_workers: int | None = None,
               quality: int = 92) -> "ImageClassifierData":
        """Shrunk copies (short side ``targ``, aspect kept) under ``path/new_path/targ/``; new data reading them.

        Copies are written in parallel and atomically. A manifest records each source's size and
        mtime, so a copy is rewritten when its source changes, and each ``targ`` has its own folder:
        a stale copy is never served. Images whose short side is already <= ``targ`` are copied as
        they are. JPEG (quality ``quality``) for ``.jpg``/``.jpeg`` names; other names keep their
        format where PIL can write it (PNG otherwise, e.g. for ``.gif``). The new data has the same
        classes, splits, transforms and file names; its ``path`` is the copies' folder.
        """
        from .resize import resize_files

        if not isinstance(self.trn_ds, FilesDataset):
            raise TypeError("resize needs data built from image files (from_paths / from_csv), not arrays")
        if not isinstance(targ, (int, np.integer)) or targ < 1:
            raise ValueError(f"targ must be a positive int (the short side in pixels), got {targ!r}")
        src_root = self.trn_ds.path
        dst_root = src_root / new_path / str(int(targ))
        dss = [d for d in (self.trn_ds, self.val_ds, self.test_ds) if d is not None]
        fnames = list(dict.fromkeys(f for d in dss for f in d.fnames))
        resize_files(src_root, dst_root, fnames, int(targ), max_workers=max_workers, quality=quality,
                     max_pixels=self.trn_ds.max_pixels)
        test = self.test_ds.with_root(dst_root) if self.test_ds is not None else None
        return type(self)(dst_root, self.trn_ds.with_root(dst_root), self.val_ds.with_root(dst_root), test,
                          classes=self.classes, bs=self.bs, tfms=(self.trn_tfms, self.val_tfms),
                          num_workers=self.num_workers, is_multi=self.is_multi, is_reg=self.is_reg,
                          skipped=self.skipped)


def _line(i: int, skip_header: bool) -> int:
    return i + (2 if skip_header else 1)


def _rows(idx, skip_header: bool, limit: int = 10) -> str:
    idx = list(idx)
    s = ", ".join(f"{i} (line {_line(i, skip_header)})" for i in idx[:limit])
    return s + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def read_label_csv(csv_path: Path, skip_header: bool) -> tuple[list[str], list[str]]:
    import pandas as pd

    if not csv_path.is_file():
        raise FileNotFoundError(f"labels CSV {csv_path} not found")
    try:
        df = pd.read_csv(csv_path, header=0 if skip_header else None, dtype=str, keep_default_na=False,
                         na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"labels CSV {csv_path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot parse labels CSV {csv_path}: {e}") from e
    if df.shape[1] < 2:
        raise ValueError(
            f"labels CSV {csv_path.name} needs two columns (file id, label); found {df.shape[1]} "
            f"column(s): {[str(c) for c in df.columns]}. Is it comma-separated?"
        )
    if len(df) == 0:
        raise ValueError(f"labels CSV {csv_path.name} has a header but no rows")
    ids = [s.strip() for s in df.iloc[:, 0].astype(str)]
    labels = [s.strip() for s in df.iloc[:, 1].astype(str)]
    name = csv_path.name
    empty = [i for i, s in enumerate(ids) if not s]
    if empty:
        raise ValueError(f"{name}: empty file id in row(s) {_rows(empty, skip_header)}")
    seen: dict[str, int] = {}
    dups = []
    for i, s in enumerate(ids):
        key = id_key(s)
        if key in seen:
            j = seen[key]
            same = f"{s!r}" if s == ids[j] else f"{ids[j]!r} and {s!r} (the same file {key!r})"
            dups.append(f"{same} in rows {j} and {i} (lines {_line(j, skip_header)}, {_line(i, skip_header)})")
        else:
            seen[key] = i
    if dups:
        raise ValueError(f"{name}: duplicate file id(s): " + "; ".join(dups[:10])
                         + (f"; and {len(dups) - 10} more" if len(dups) > 10 else "")
                         + ". Each image must appear once.")
    return ids, labels


def _parse_labels(name: str, labels: list[str], continuous: bool, skip_header: bool):
    if continuous:
        vals, bad = [], []
        for i, s in enumerate(labels):
            try:
                v = [float(t) for t in s.split()]
            except ValueError:
                v = []
            if not v or not np.all(np.isfinite(v)):
                bad.append(i)
            vals.append(v)
        if bad:
            raise ValueError(f"{name}: continuous=True (--regression) needs a number in every label; bad or empty in row(s) "
                             f"{_rows(bad, skip_header)} (e.g. {labels[bad[0]]!r})")
        widths = {len(v) for v in vals}
        if len(widths) != 1:
            raise ValueError(f"{name}: rows hold different numbers of values ({sorted(widths)})")
        y = np.asarray(vals, dtype=np.float32)
        return "reg", [], (y[:, 0] if y.shape[1] == 1 else y)
    renamed = sorted({(s, nfc(s)) for s in labels if nfc(s) != s})
    if renamed:  # one class however its name is typed (composed or decomposed accents)
        warnings.warn(f"visiontune: {_shown(name)}: label(s) not in Unicode NFC: "
                      + ", ".join(f"{a!a} is read as {b!a}" for a, b in renamed[:10])
                      + (f" and {len(renamed) - 10} more" if len(renamed) > 10 else "")
                      + " (NFC, so the same name typed either way is one class)", UnicodeNamesWarning, stacklevel=4)
        labels = [nfc(s) for s in labels]
    tags = [s.split() for s in labels]
    if any(len(t) > 1 for t in tags):
        classes = sorted({t for ts in tags for t in ts})
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(tags), len(classes)), dtype=np.float32)
        for r, ts in enumerate(tags):
            y[r, [index[t] for t in ts]] = 1.0
        return "multi", classes, y
    empty = [i for i, t in enumerate(tags) if not t]
    if empty:
        raise ValueError(f"{name}: empty label in row(s) {_rows(empty, skip_header)}; "
                         "fill them in or remove those rows")
    flat = [t[0] for t in tags]
    classes = sorted(set(flat))
    index = {c: i for i, c in enumerate(classes)}
    return "single", classes, np.asarray([index[c] for c in flat], dtype=np.int64)


def _test_items(root: Path, test_name: str, kind: str, y_like=None):
    d = root / test_name
    if not d.is_dir():
        raise FileNotFoundError(f"test folder {d} does not exist; folders in {root}: {_subdirs(root)}")
    names = [_rel(test_name, n) for n in _list_images(d)]
    if kind == "single" or y_like is None:
        y = np.zeros(len(names), dtype=np.int64 if kind == "single" else np.float32)
    else:
        y = np.zeros((len(names),) + y_like.shape[1:], dtype=np.float32)
    return names, y
