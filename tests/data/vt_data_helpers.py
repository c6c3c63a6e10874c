"""Shared helpers for the data tests: tiny generated images and folder / CSV datasets."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

COLORS = {"cat": (200, 30, 30), "dog": (30, 30, 200), "owl": (30, 200, 30)}


def save_jpeg(path: Path, size=(48, 40), color=(200, 30, 30), noise: int = 0, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty((size[1], size[0], 3), np.uint8)
    arr[:] = color
    if noise:
        rng = np.random.default_rng(seed)
        arr = np.clip(arr.astype(int) + rng.integers(-noise, noise + 1, arr.shape), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return path


def jpeg_bytes(size=(64, 48), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_folder_dataset(root: Path, classes=("cat", "dog"), n_trn=6, n_val=3, val_name="valid",
                        test_n=0, size=(48, 40)) -> Path:
    for split, n in (("train", n_trn), (val_name, n_val)):
        for c in classes:
            for i in range(n):
                save_jpeg(root / split / c / f"{c}{i}.jpg", size=size, color=COLORS[c], noise=8, seed=i)
    for i in range(test_n):
        save_jpeg(root / "test" / f"t{i}.jpg", size=size, color=(128, 128, 128), noise=8, seed=i)
    return root


def hymenoptera() -> Path:
    p = SHARED / "hymenoptera"
    if not p.is_dir():
        pytest.skip(f"shared dataset missing: {p}")
    return p


def dog_breeds() -> Path:
    p = SHARED / "dog_breeds_sample"
    if not p.is_dir():
        pytest.skip(f"shared dataset missing: {p}")
    return p
