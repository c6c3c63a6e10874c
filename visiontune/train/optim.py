"""Optimizer factories for ``ConvLearner(opt_fn=...)``: ``opt_fn(param_groups, lr) -> Optimizer``.

The default is SGD with momentum 0.9, as fastai 0.7's ``Learner`` really used
(``opt_fn or SGD_Momentum(0.9)``), and the lesson's rates (1e-2 for the head,
``[1e-4, 1e-3, 1e-2]`` after unfreezing) were tuned for it. See docs/optimizer.md for the
measurement behind keeping that default; Adam / AdamW are one argument away.

>>> import torch
>>> opt = SGD_Momentum(0.9)([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}], 0.1)
>>> type(opt).__name__, opt.param_groups[0]["momentum"]
('SGD', 0.9)
"""
from __future__ import annotations

import torch


def SGD_Momentum(momentum: float = 0.9):
    def make(param_groups, lr):
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum)

    make.__name__ = f"SGD_Momentum({momentum})"
    return make


def Adam(betas=(0.9, 0.99), eps: float = 1e-8):
    def make(param_groups, lr):
        return torch.optim.Adam(param_groups, lr=lr, betas=betas, eps=eps)

    make.__name__ = "Adam"
    return make


def AdamW(betas=(0.9, 0.99), eps: float = 1e-8):
    def make(param_groups, lr):
        return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=eps)

    make.__name__ = "AdamW"
    return make


OPTIMIZERS = {"sgd": SGD_Momentum, "adam": Adam, "adamw": AdamW}


def optimizer_by_name(name: str):
    try:
        return OPTIMIZERS[name.lower()]()
    except KeyError:
        raise ValueError(f"invalid optimizer {name!r}. Only {', '.join(OPTIMIZERS)} are supported.") from None
