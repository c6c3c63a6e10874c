"""Steps 5-8's plan: what fine-tuning the measured costs afford, and the learner put in that state.

Two ways to fine-tune, both measured on a batch before choosing (:func:`visiontune.run.plan.choose_fine_tuning`):

- **full**: every layer group trains on the images (a forward and backward pass of the whole body per
  image and epoch); what a GPU affords;
- **partial**: the early layer group stays frozen, its output maps are computed once
  (:mod:`visiontune.train.early_maps`), and the late group and the head train on them. On 2 CPU cores at
  224 px an epoch costs ~1/15 of a full one (efficientnet_lite0 on cifar10_6k: ~14 s against ~200 s), as the
  costliest gradients are left out (:func:`~visiontune.train.early_maps.keep_pretrained`).

Without ``--budget`` the phase (its final evaluation included) may take ``unfrozen_budget`` seconds, by default
as long as the head-only run would take in whole (the run so far and its final TTA), so the whole run takes at
most about twice the head-only model's time; with ``--budget`` whatever it leaves.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..train import distributed
from .plan import choose_fine_tuning, default_tta_views, plan_unfrozen

PARTIAL_RATES = """Partial fine-tuning skips step 7's sweep: the late group trains at step 2's head rate, the head
lr_ratio (3) times faster. Measured on cifar10_6k (head at 1e-3, one epoch of partial fine-tuning, head-only
accuracy 0.778): the unfrozen sweep's choice (20 noisy batches, min_loss/10, clipped to [lr/10, lr]: 1e-4)
0.796; head at 1e-3 0.803; head at 3e-3 (this rule) 0.815. The sweep itself cost 11 s of a 105 s run. With the
costliest gradients left out (early_maps.keep_pretrained; same head): late 5e-4 / head 3e-3 0.810; 1e-3 / 1e-3
0.811; 1e-3 / 3e-3 (this rule) 0.811, 0.831 after two epochs; 2e-3 / 3e-3 0.816; 3e-3 / 3e-3 0.797 (one seed each,
so differences under ~1 point are noise)."""

MIN_UNFROZEN_BUDGET_S = 10.0
"""Without --budget, the unfrozen phase gets at least this much (the head-only run may be shorter)."""


def measure_step_cost(learn, n: int = 8) -> tuple[float, float]:
    """Seconds per image for one forward+backward (unfrozen, train mode) and one forward (eval).

    Weights, BatchNorm statistics and RNG states are restored, so measuring changes nothing.
    """
    from ..train.loop import autocast_context, to_device

    ds = learn.data.fix_dl.dataset
    n = min(n, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    x = learn.data.val_tfms.normalize(torch.stack(list(xs)))
    y = torch.as_tensor(np.stack([np.asarray(v) for v in ys]))
    x = to_device(x, learn.device, learn.channels_last)
    return _time_steps(learn, learn.model, x, y.to(learn.device), autocast_context(learn.device, learn.amp))


def measure_late_step_cost(learn, shape: tuple[int, ...]) -> tuple[float, float]:
    """Seconds per image for one training step and one evaluation of the late group and the head on
    early-group maps of ``shape``, with what partial fine-tuning trains (depthwise kernels kept, see
    :func:`~visiontune.train.early_maps.keep_pretrained`), on one batch of maps as EarlyMaps draws them (random
    maps: the cost does not depend on their values). Which parameters train is restored afterwards."""
    from ..train.early_maps import keep_pretrained
    from ..train.loop import autocast_context, to_device

    n = learn._early.bs
    x = to_device(torch.randn(n, *shape), learn.device, learn.channels_last)
    y = torch.as_tensor(np.asarray(learn.data.trn_y)[np.arange(n) % max(len(learn.data.trn_y), 1)]).to(learn.device)
    late = learn._early.late_model()
    trainable = [(p, p.requires_grad) for p in late.parameters()]
    keep_pretrained(late)
    try:
        # a step of the late group is short (~0.2 s) and noisy on a shared machine: the fastest of three
        return _time_steps(learn, late, x, y, autocast_context(learn.device, learn.amp), repeats=3)
    finally:
        for p, flag in trainable:
            p.requires_grad_(flag)


def _time_steps(learn, model, x, y, autocast, repeats: int = 1) -> tuple[float, float]:
    """Seconds per image of a training step (the fastest of ``repeats``, after a warm-up) and of an evaluation."""
    n = len(x)
    state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        def train_step():
            learn._set_train_mode()
            with autocast:
                out = model(x)
            learn.crit(out.float(), y).backward()

        train_step()  # warm-up: the first pass of a batch shape sets up kernels
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            train_step()
            times.append(time.perf_counter() - t0)
        c_train = min(times) / n
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast:
            model(x)
        c_eval = (time.perf_counter() - t0) / n
    for p in learn.model.parameters():
        p.grad = None
    learn.model.load_state_dict(state)
    return c_train, c_eval


def available_seconds(ctx, final_evaluation: float = 0.0) -> float:
    """Seconds for steps 5-8 and the final evaluation: what --budget leaves, else ``unfrozen_budget``, by default
    as long as the head-only run would take in whole (the run so far and ``final_evaluation``, the seconds
    its final TTA would take), so that fine-tuning at most doubles the run's time."""
    cfg, clock = ctx.cfg, ctx.clock
    if cfg.budget is not None:
        return clock.left() - ctx.reserve
    if cfg.unfrozen_budget is not None:
        return float(cfg.unfrozen_budget)
    return max(MIN_UNFROZEN_BUDGET_S, clock.elapsed() + float(final_evaluation))


def measured_plan(ctx) -> dict:
    """Measure both ways of fine-tuning and plan the one that buys more (see the module docstring)."""
    cfg, st, learn, data = ctx.cfg, ctx.st, ctx.learn, ctx.data
    n_trn, n_val, world = len(data.trn_ds), len(data.val_ds), distributed.world_size()
    # the final TTA: one fp32 pass over the validation images per view (measured in step 1)
    per_view = float(st.choices.get("seconds_per_valid_pass", 0.0))
    n_views = cfg.tta if cfg.tta is not None else default_tta_views(cfg.resolved_tta(), per_view, ctx.clock.elapsed())
    available = available_seconds(ctx, (1 + n_views) * per_view)
    common = dict(n_trn=n_trn, n_val=n_val, available=available, n_tta=n_views,
                  max_cycles=cfg.max_cycles, world_size=world)
    learn.precompute = False
    learn.unfreeze()
    # seconds per image for the whole process group: under torchrun each rank takes 1/world of the images
    c_train, c_eval = (c / world for c in measure_step_cost(learn))
    full = plan_unfrozen(bs=cfg.bs, iters_per_epoch=len(data.trn_dl), seconds_per_image_train=c_train,
                         seconds_per_image_eval=c_eval, tta_cost=(1 + n_views) * per_view, **common)
    partial = None
    shape = _partial_map_shape(learn)
    if shape is not None:
        c_train, c_eval = measure_late_step_cost(learn, shape)
        # the maps kept by step 1 cost nothing more; else their pass costs at most a pass of the whole body over
        # the training and validation images (step 1's, or where its activations came from the on-disk cache,
        # the measured forward of the model)
        setup = 0.0
        if not learn._early.ready():
            setup = float(st.choices.get("seconds_per_train_pass", 0.0)) + per_view
            if setup < 0.05 * (n_trn + n_val) * full["seconds_per_image_eval"]:
                setup = (n_trn + n_val) * full["seconds_per_image_eval"]
        # the maps' batches and epochs as EarlyMaps will draw them
        partial = plan_unfrozen(bs=learn._early.bs, iters_per_epoch=learn._early.iters_per_epoch(),
                                seconds_per_image_train=c_train,
                                seconds_per_image_eval=c_eval, tta_cost=n_views * per_view, setup_cost=setup,
                                sweep=False, **common)
        partial["full_epoch_cost"] = full["epoch_cost"]
    return choose_fine_tuning(full, partial)


def _early_map_shape(learn) -> tuple[int, ...] | None:
    """The early group's map shape, or ``None`` where the body does not run as its two groups in sequence."""
    from ..train.early_maps import map_shape

    try:
        early, _ = learn._early.parts()  # the split, checked once per body
    except ValueError:
        return None
    return map_shape(early, learn.data.sz)


def _partial_map_shape(learn) -> tuple[int, ...] | None:
    """The early group's map shape where partial fine-tuning can run: the body splits and the maps fit in memory."""
    shape = _early_map_shape(learn)
    return shape if shape is not None and _maps_fit_in_memory(learn, shape) else None


def _maps_fit_in_memory(learn, shape: tuple[int, ...]) -> bool:
    """The maps fit in a share of the free memory (counted at 4 bytes a value: the validation maps are float32)."""
    from ..data.checks import available_memory
    from ..train.early_maps import MAPS_MEMORY_SHARE

    need = int(np.prod(shape)) * 4 * (len(learn.data.trn_ds) + len(learn.data.val_ds))
    avail = available_memory()
    return avail is None or need <= MAPS_MEMORY_SHARE * avail


def keep_maps(ctx) -> bool:
    """Whether step 1 keeps the early group's maps for partial fine-tuning (``learn.keep_early_maps``): the
    body runs as its two groups in sequence, the maps fit in memory, one process, and steps 5-8 may run (no
    ``--fast``, and an ``unfrozen_budget`` of at least :data:`MIN_UNFROZEN_BUDGET_S` where one is given).

    Computing precompute's activations through the maps (the early group's engine, then the late group's) took
    ~4 s more than one engine for the whole body on cifar10_6k (22 s against 17 s for 6,000 images) and saves
    step 5 a second pass over the images (~15 s)."""
    cfg = ctx.cfg
    if cfg.fast or distributed.is_distributed():
        return False
    if cfg.budget is None and cfg.unfrozen_budget is not None and cfg.unfrozen_budget < MIN_UNFROZEN_BUDGET_S:
        return False
    return _partial_map_shape(ctx.learn) is not None


def enter(learn, plan: dict) -> None:
    """Put the learner in the plan's state: every group training on images, or the late group on maps
    (the maps step 1 kept are dropped when they are not used)."""
    if plan.get("mode") == "partial":
        learn.cache_early = True
    else:
        release_maps(learn)
        learn.precompute = False
        learn.unfreeze()


def release_maps(learn) -> None:
    """Stop keeping early-group maps and free them (no partial fine-tuning in this run)."""
    learn.keep_early_maps = False
    learn._early.clear()


def describe(plan: dict) -> str:
    """One line: what the plan trains, what it costs and what it buys."""
    if plan.get("mode") == "partial":
        return (f"partial fine-tuning (the late layer group and the head, on cached early-group maps): "
                f"~{plan['setup_cost']:.0f} s for the maps, ~{plan['epoch_cost']:.1f} s per epoch (a full unfrozen "
                f"epoch: ~{plan['full_epoch_cost']:.0f} s), {_buys(plan)}")
    return f"unfrozen phase: ~{plan['epoch_cost']:.1f} s per epoch, {_buys(plan)}"


def _buys(plan: dict) -> str:
    """The plan line's end: the time available and the epochs and SGDR cycles it buys."""
    cycle_len = f" of cycle_len {plan['cycle_len']}" if plan.get("cycle_len", 1) != 1 else ""
    return (f"{plan['available']:.0f} s available -> {plan['epochs']} epoch(s) in {plan['cycles']} "
            f"SGDR cycle(s){cycle_len}")
