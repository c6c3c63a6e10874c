"""What the data asks of the model: its kind (single-label, multi-label or regression), the loss and
the default metrics of each kind, and a regression head's starting point.

>>> from types import SimpleNamespace
>>> data_kind(SimpleNamespace(is_multi=True)), data_kind(SimpleNamespace())
('multi', 'single')
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .metrics import accuracy, accuracy_multi


def data_kind(data) -> str:
    return "reg" if getattr(data, "is_reg", False) else "multi" if getattr(data, "is_multi", False) else "single"


def loss_for(kind: str) -> Callable:
    """NLL on log-probs (single-label), BCE on sigmoid outputs (multi-label), L1 (regression)."""
    if kind == "single":
        return lambda out, y: F.nll_loss(out, y.long())
    if kind == "multi":
        return lambda out, y: F.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), y.float())
    return lambda out, y: F.l1_loss(out.reshape(y.shape[0], -1), y.float().reshape(y.shape[0], -1))


def start_at_target_mean(head: nn.Module, targets) -> None:
    """A new regression head starts out predicting the training targets' mean: its last layer gets
    zero weights and the mean as its bias.

    Targets are on any scale (prices, ages, angles). With the default random init the untrained
    head predicts the mean of nothing, with noise of about +-0.6 from its 2 x 1280 random weights,
    and an L1 loss moves the outputs by at most the learning rate per step: a few epochs would not
    even reach the targets' level. Starting at the mean, training learns the variation around it
    (the gradient of a zero weight is not zero, so nothing is stuck).
    """
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    mean = torch.as_tensor(np.asarray(targets, dtype=np.float32)).reshape(len(targets), -1).mean(0)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(mean.to(last.bias.dtype).expand_as(last.bias))


def default_metrics(kind: str) -> list[Callable]:
    """Accuracy (single-label), accuracy at 0.5 per label (multi-label), none besides the loss (regression)."""
    return [] if kind == "reg" else [accuracy_multi] if kind == "multi" else [accuracy]
