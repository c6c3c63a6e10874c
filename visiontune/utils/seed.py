"""Seeding: the one place that seeds Python's, NumPy's and torch's generators.

>>> import random
>>> seed_everything(7); a = random.random()
>>> seed_everything(7); a == random.random()
True
"""
from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy (modulo 2**32, its limit) and torch (every device).

    ``seed`` must be a whole number in [0, 2**64): a ValueError says so before anything is seeded.
    """
    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be a whole number between 0 and 2**64 - 1, got {seed!r}")
    seed = int(seed)

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
