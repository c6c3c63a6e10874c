"""The validation split with the lesson's name: :func:`get_cv_idxs`.

>>> get_cv_idxs(10)  # rows 8 and 9 of np.random.seed(42); np.random.permutation(10)
array([3, 6])
"""
from __future__ import annotations

import numpy as np

__all__ = ["get_cv_idxs"]


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

