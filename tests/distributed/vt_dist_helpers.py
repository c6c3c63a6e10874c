"""Helpers for the torchrun tests: a small generated 2-class dataset and a clean launch environment."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

N_TRN, N_VAL = 16, 8  # images per class
CLASSES = ("stripes", "discs")
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID")


def image(cls: int, i: int, size: int = 64) -> Image.Image:
    """Class 0: noisy horizontal stripes; class 1: a noisy disc. Deterministic in (cls, i)."""
    rng = np.random.default_rng(1000 * cls + i)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if cls == 0:  # stripes
        base = np.sin(2 * np.pi * (4 + rng.uniform(-1, 1)) * yy)[..., None] * np.array([90, 40, 10]) + np.array([150, 90, 60])
    else:  # a disc
        r = np.hypot(xx - rng.uniform(0.35, 0.65), yy - rng.uniform(0.35, 0.65))
        base = (r < 0.25)[..., None] * np.array([40, 90, 150]) + np.array([40, 60, 90])
    return Image.fromarray(np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8))


def make_dataset(root: Path, n_trn: int = N_TRN, n_val: int = N_VAL) -> Path:
    """``root/{train,valid}/{stripes,discs}/*.jpg``: ``n_trn`` / ``n_val`` images a class."""
    for split, n, offset in (("train", n_trn, 0), ("valid", n_val, 500)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                image(c, i + offset).save(d / f"{name}_{i}.jpg", quality=92)
    return root


def launch_env(**extra: str) -> dict:
    """The test's environment for a child: one thread per process, unbuffered, no inherited torchrun variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}
    for k in DIST_VARS:
        env.pop(k, None)
    return env
