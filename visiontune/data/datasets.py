"""The datasets: image files under a folder (:class:`FilesDataset`) and in-memory arrays
(:class:`ArraysDataset`); ``ds[i] -> (uint8 CHW tensor, target tensor)`` for images.

A file that breaks *after* the data was built (deleted, overwritten, permissions changed) never ends an
epoch: a blank mean-colour image stands in for it, with one ``FileChangedWarning`` naming it
(``strict=True``: the ``ImageLoadError`` is raised).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from visiontune.transforms.core import ImageTransforms

from ..imaging.decode import open_image
from ..imaging.limits import DEFAULT_MAX_PIXELS, ImageLoadError
from .errors import FileChangedWarning, _shown

__all__ = ["ArraysDataset", "FilesDataset"]


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
