"""The training loop as plain functions: one epoch of training, one pass of evaluation.

They take a model, a loss, an optimizer and a loader, and know nothing about the learner.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the learner restores the last good weights."""


def autocast_context(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def set_group_lrs(optimizer: torch.optim.Optimizer, base_lrs: Sequence[float], multiplier: float) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * multiplier


def train_one_epoch(
    model: nn.Module,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    base_lrs: Sequence[float],
    multipliers: Sequence[float],
    start_iter: int,
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
    set_train_mode: Callable[[], None] | None = None,
    on_batch_end: Callable[[int, float, float], bool] | None = None,
    progress=None,
    reduce_loss: Callable[[torch.Tensor], float] | None = None,
) -> tuple[float, int, bool]:
    """Train for one pass over ``loader``; the rate at global iteration ``i`` is ``base * multipliers[i]``.

    ``reduce_loss`` turns each batch's loss into the number that is logged and checked (under
    torchrun: the mean over ranks, so every rank records, stops and diverges on the same values).

    Returns (mean loss, next iteration index, stopped early). Raises :class:`TrainingDiverged`
    on a NaN/Inf loss, before the optimizer step that would spread it into the weights.
    """
    (set_train_mode or model.train)()
    total, count, it, stopped = 0.0, 0, start_iter, False
    for x, y in loader:
        if it >= len(multipliers):
            break
        set_group_lrs(optimizer, base_lrs, multipliers[it])
        x, y = to_device(x, device, channels_last), y.to(device, non_blocking=True)
        with autocast_context(device, amp):
            out = model(x)
        loss = loss_fn(out.float(), y)
        value = float(loss.detach()) if reduce_loss is None else reduce_loss(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at iteration {it} (learning rate {optimizer.param_groups[-1]['lr']:.3g}); "
                "lower the learning rate (try learn.lr_find()) and train again"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += value * len(y)
        count += len(y)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{value:.4f}", refresh=False)
        if on_batch_end is not None and on_batch_end(it, value, optimizer.param_groups[-1]["lr"]):
            stopped = True
            it += 1
            break
        it += 1
    return (total / max(count, 1)), it, stopped


@torch.no_grad()
def predict_outputs(model: nn.Module, loader: Iterable, device: torch.device, amp: bool = False,
                    channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``loader``; returns (outputs, targets) as float32 numpy arrays."""
    model.eval()
    outs, targs = [], []
    for x, y in loader:
        x = to_device(x, device, channels_last)
        with autocast_context(device, amp):
            out = model(x)
        outs.append(out.float().cpu().numpy())
        targs.append(np.asarray(y))
    if not outs:
        return np.zeros((0,)), np.zeros((0,))
    return np.concatenate(outs), np.concatenate(targs)


def evaluate(outputs: np.ndarray, targets: np.ndarray, loss_fn: Callable, metrics: Sequence[Callable]) -> list[float]:
    """[loss, *metrics] over the whole set, from model outputs and targets."""
    out_t = torch.from_numpy(np.asarray(outputs, dtype=np.float32))
    targ_t = torch.from_numpy(np.asarray(targets))
    loss = float(loss_fn(out_t, targ_t))
    return [loss] + [float(m(outputs, targets)) for m in metrics]
