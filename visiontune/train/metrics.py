"""Metrics as the lesson uses them: ``accuracy(log_preds, y)`` on numpy arrays or tensors.

>>> import numpy as np
>>> accuracy(np.log([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]))
0.6666666666666666
>>> accuracy_multi(np.array([[0.9, 0.2], [0.4, 0.7]]), np.array([[1, 0], [1, 1]]))
0.75
>>> round(fbeta(np.array([[0.9, 0.3, 0.1], [0.2, 0.8, 0.6]]), np.array([[1, 1, 0], [0, 1, 0]]), beta=2), 4)
0.6944

Multi-label data is scored as the top-down (satellite) lesson does: ``f2`` is the F2 score at a
threshold of 0.2, averaged over images (``metrics=[f2]``); ``fbeta_thresh(beta, thresh)`` makes others.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["accuracy", "accuracy_multi", "accuracy_thresh", "f2", "fbeta", "fbeta_thresh", "metric_name"]

F2_THRESH = 0.2  # the satellite lesson's threshold on sigmoid outputs


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def accuracy(preds, targs) -> float:
    """Share of rows whose highest score is the target class (works on log-probs or probs).

    ``preds`` is ``(n, classes)`` and ``targs`` ``(n,)``; anything else (say a mean over the rows,
    ``np.mean(np.exp(log_preds), 0)``, passed as predictions) raises a ``ValueError`` naming both shapes.

    >>> accuracy(np.zeros(2), np.array([0, 1, 1]))
    Traceback (most recent call last):
    ...
    ValueError: accuracy: preds has shape (2,) and targs (3,); expected preds (n, classes) with one row per target (n,)
    """
    preds, targs = _np(preds), _np(targs)
    flat = targs.reshape(-1) if targs.ndim == 2 and 1 in targs.shape else targs
    if preds.ndim != 2 or flat.ndim != 1 or preds.shape[0] != flat.shape[0]:
        raise ValueError(f"accuracy: preds has shape {tuple(preds.shape)} and targs {tuple(targs.shape)}; "
                         "expected preds (n, classes) with one row per target (n,)")
    return float((preds.argmax(axis=-1) == flat).mean())


def _same_shape(name: str, preds: np.ndarray, targs: np.ndarray) -> None:
    if preds.shape != targs.shape:
        raise ValueError(f"{name}: preds has shape {tuple(preds.shape)} and targs {tuple(targs.shape)}; "
                         "multi-label scores need one probability per target label (the same shape)")


def accuracy_thresh(thresh: float = 0.5):
    """Multi-label accuracy at a threshold, as a metric function."""

    def acc(preds, targs) -> float:
        p, t = _np(preds), _np(targs)
        _same_shape("accuracy_thresh", p, t)
        return float(((p > thresh) == (t > 0.5)).mean())

    acc.__name__ = f"accuracy_thresh_{thresh:g}"
    return acc


def accuracy_multi(preds, targs, thresh: float = 0.5) -> float:
    """Multi-label accuracy: every (row, label) decision counted, threshold 0.5 on probabilities."""
    return accuracy_thresh(thresh)(preds, targs)


def fbeta(preds, targs, beta: float = 2, thresh: float = 0.5) -> float:
    """Multi-label F-beta: labels with probability above ``thresh`` are predicted; the score of each
    image is ``(1 + b²) tp / ((1 + b²) tp + b² fn + fp)`` (0 when it has no true and no predicted label),
    averaged over images: scikit-learn's ``fbeta_score(..., average="samples", zero_division=0)``.
    """
    p, t = _np(preds), _np(targs)
    _same_shape("fbeta", p, t)
    if p.ndim != 2:
        raise ValueError(f"fbeta: preds has shape {tuple(p.shape)}; expected (images, labels)")
    hit, true = p > thresh, t > 0.5
    tp = (hit & true).sum(axis=1).astype(np.float64)
    fp = (hit & ~true).sum(axis=1)
    fn = (~hit & true).sum(axis=1)
    b2 = float(beta) ** 2
    denom = (1 + b2) * tp + b2 * fn + fp
    scores = np.divide((1 + b2) * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(scores.mean()) if len(scores) else float("nan")


def fbeta_thresh(beta: float = 2, thresh: float = F2_THRESH):
    """``fbeta`` at a fixed ``beta`` and ``thresh``, as a metric function (``metrics=[fbeta_thresh(2, 0.2)]``)."""

    def score(preds, targs) -> float:
        return fbeta(preds, targs, beta=beta, thresh=thresh)

    score.__name__ = "f2" if (beta, thresh) == (2, F2_THRESH) else f"f{beta:g}_thresh_{thresh:g}"
    return score


f2 = fbeta_thresh(2, F2_THRESH)
f2.__doc__ = "The satellite lesson's metric: F2 at threshold 0.2, averaged over images."


def metric_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
