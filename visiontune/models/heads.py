"""The new head put on a pretrained body, as in the lesson's ``ConvLearner.pretrained``.

``model = Sequential(body, ConcatPool(), head)`` where ``ConcatPool`` joins average and max
pooling (2 x num_features values per image) and ``head`` is BatchNorm, Dropout, Linear
(+ optional ``xtra_fc`` hidden layers) and the output activation that fits the data:
``LogSoftmax`` for single-label (so ``np.exp(log_preds)`` gives probabilities), ``Sigmoid`` for
multi-label, nothing for regression.

>>> import torch
>>> head = create_head(8, 3, ps=0.5, xtra_fc=[4], kind="single")
>>> head(torch.randn(5, 8)).exp().sum(1).allclose(torch.ones(5))
True
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..utils.kinds import KINDS


class ConcatPool(nn.Module):
    """Concatenated adaptive average and max pooling, flattened: (N, C, h, w) -> (N, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)


def _as_list(ps, n: int) -> list[float]:
    if ps is None:
        return [0.25] * n
    if isinstance(ps, (int, float)):
        return [float(ps)] * n
    ps = [float(p) for p in ps]
    if len(ps) == 1:
        return ps * n
    if len(ps) != n:
        raise ValueError(f"ps has {len(ps)} values but the head has {n} layers (xtra_fc + 1); pass one number or {n}")
    return ps


def create_head(in_features: int, n_out: int, ps=None, xtra_fc: Sequence[int] | None = None, kind: str = "single") -> nn.Sequential:
    """BatchNorm -> Dropout -> Linear blocks ending in the activation for ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    sizes = [in_features, *(xtra_fc or []), n_out]
    drops = _as_list(ps, len(sizes) - 1)
    layers: list[nn.Module] = []
    for i, (ni, no) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.BatchNorm1d(ni), nn.Dropout(drops[i]), nn.Linear(ni, no)]
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    if kind == "single":
        layers.append(nn.LogSoftmax(dim=1))
    elif kind == "multi":
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)
