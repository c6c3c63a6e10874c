"""``ImageClassifierData``: the training, validation and optional test data, built from folders
(:meth:`~ImageClassifierData.from_paths`), a labels CSV (:meth:`~ImageClassifierData.from_csv`) or
in-memory arrays (:meth:`~ImageClassifierData.from_arrays`), with the loaders the learner uses:

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
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from visiontune.transforms.core import ImageTransforms, imagenet_stats, tfms_from_stats

from ..imaging.limits import DEFAULT_MAX_PIXELS
from .checks import _check_classes, _filter_readable, check_size_fits
from .csv_labels import _line, _parse_labels, read_label_csv
from .datasets import ArraysDataset, FilesDataset
from .errors import _shown, _some
from .loader import Loader, default_num_workers
from .paths import (
    _check_root,
    _class_folders,
    _leaving_folder,
    _list_images,
    _rel,
    _resolve_val_name,
    _safe_relative,
    _subdirs,
    _suffix_hint,
)
from .splits import get_cv_idxs

__all__ = ["ImageClassifierData"]

DEFAULT_SZ = 224


def _resolve_tfms(tfms) -> tuple[ImageTransforms, ImageTransforms]:
    if tfms is None:
        tfms = (None, None)
    if isinstance(tfms, ImageTransforms) or not isinstance(tfms, (tuple, list)) or len(tfms) != 2:
        raise TypeError("tfms must be a (train_tfms, val_tfms) pair, as returned by tfms_from_model(arch, sz)")
    trn, val = tfms
    if trn is None and val is None:
        return tfms_from_stats(imagenet_stats, DEFAULT_SZ)
    return (trn if trn is not None else val), (val if val is not None else trn)


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
