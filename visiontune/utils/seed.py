"""Seeding: the one place that seeds Python's, NumPy's and torch's generators.

>>> import random
>>> seed_everything(7); a = random.random()
>>> seed_everything(7); a == random.random()
True
"""
from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy (modulo 2**32, its limit) and torch (every device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
