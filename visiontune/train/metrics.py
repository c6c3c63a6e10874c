"""Metrics as the lesson uses them: ``accuracy(log_preds, y)`` on numpy arrays or tensors.

>>> import numpy as np
>>> accuracy(np.log([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]))
0.6666666666666666
>>> accuracy_multi(np.array([[0.9, 0.2], [0.4, 0.7]]), np.array([[1, 0], [1, 1]]))
0.75
"""
from __future__ import annotations

import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def accuracy(preds, targs) -> float:
    """Share of rows whose highest score is the target class (works on log-probs or probs)."""
    preds, targs = _np(preds), _np(targs)
    return float((preds.argmax(axis=-1) == targs.reshape(-1)).mean())


def accuracy_thresh(thresh: float = 0.5):
    """Multi-label accuracy at a threshold, as a metric function."""

    def acc(preds, targs) -> float:
        return float(((_np(preds) > thresh) == (_np(targs) > 0.5)).mean())

    acc.__name__ = f"accuracy_thresh_{thresh:g}"
    return acc


def accuracy_multi(preds, targs, thresh: float = 0.5) -> float:
    """Multi-label accuracy: every (row, label) decision counted, threshold 0.5 on probabilities."""
    return accuracy_thresh(thresh)(preds, targs)


def metric_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
