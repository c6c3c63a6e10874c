"""The recipe's budget and cost planning (run/plan.py): exact values from made-up costs, no data."""
from __future__ import annotations

import pytest

from visiontune.run.plan import (
    affordable_aug_views,
    affordable_tta_views,
    choose_fine_tuning,
    plan_unfrozen,
    sgdr_cycle_len,
    sgdr_cycles,
)


@pytest.mark.parametrize("epochs,max_cycles,want", [(0, 3, 0), (1, 3, 1), (2, 3, 1), (3, 3, 2), (6, 3, 2), (7, 3, 3),
                                                   (100, 3, 3), (100, 0, 0)])
def test_sgdr_cycles_fit_whole_cycles_of_1_2_4_epochs(epochs, max_cycles, want):
    assert sgdr_cycles(epochs, max_cycles) == want


@pytest.mark.parametrize("epochs,cycles,max_cycles,want", [(1, 1, 3, 1), (2, 1, 3, 2), (5, 2, 3, 1), (6, 2, 3, 2),
                                                          (100, 3, 3, 1), (100, 1, 1, 1), (0, 0, 3, 1)])
def test_sgdr_cycle_len_spends_the_epochs_left_over_on_longer_cycles(epochs, cycles, max_cycles, want):
    assert sgdr_cycle_len(epochs, cycles, max_cycles) == want


def test_unfrozen_plan_spends_what_is_left_after_tta_and_the_sweep_on_whole_cycles():
    kw = dict(n_trn=1000, n_val=200, bs=32, iters_per_epoch=32, seconds_per_image_train=0.05,
              seconds_per_image_eval=0.01, n_tta=4, max_cycles=3)
    plan = plan_unfrozen(available=300.0, **kw)
    # epoch 1000*0.05 + 200*0.01 = 52 s; TTA 200*5*0.01 = 10 s; sweep round(75/1.6)=47 -> 20 batches = 32 s
    assert plan == {"seconds_per_image_train": 0.05, "seconds_per_image_eval": 0.01, "epoch_cost": 52.0,
                    "sweep_iters": 20, "sweep_cost": 32.0, "tta_cost": 10.0, "available": 300.0,
                    "cycles": 2, "cycle_len": 1, "epochs": 3, "world_size": 1,
                    "setup_cost": 0.0}  # (300-10-32)//52 = 4 epochs -> 1+2
    two = plan_unfrozen(available=146.0, **kw)  # (146-10-32)//52 = 2 epochs: one cycle, two epochs long
    assert (two["cycles"], two["cycle_len"], two["epochs"]) == (1, 2, 2)
    assert plan_unfrozen(available=30.0, **kw)["cycles"] == 0  # the CPU default: nothing fits
    assert plan_unfrozen(available=-5.0, **kw)["cycles"] == 0
    small = plan_unfrozen(available=1e6, **{**kw, "iters_per_epoch": 2})
    assert small["sweep_iters"] == 10 and small["cycles"] == 3  # at most two epochs of batches, 5 at least


def test_affordable_views_never_exceed_what_was_asked_nor_the_time_left():
    assert affordable_aug_views(2, seconds_left=1000.0, train_pass_seconds=10.0) == 2
    assert affordable_aug_views(4, seconds_left=100.0, train_pass_seconds=10.0) == 2
    assert affordable_aug_views(4, seconds_left=-1.0, train_pass_seconds=10.0) == 0
    assert affordable_tta_views(4, seconds_left=25.0, n_val=100, seconds_per_image=0.1) == 2
    assert affordable_tta_views(4, seconds_left=0.0, n_val=100, seconds_per_image=0.1) == 0
    assert affordable_tta_views(2, seconds_left=1e9, n_val=100, seconds_per_image=0.0) == 2


def test_fine_tuning_plan_chooses_partial_where_it_buys_more_epochs():
    """cifar10_6k-like costs on 2 CPU cores: a full unfrozen epoch ~330 s, a partial one ~40 s plus ~30 s of maps."""
    kw = dict(n_trn=5000, n_val=1000, bs=32, n_tta=1, max_cycles=3)
    available = 60.0
    full = plan_unfrozen(iters_per_epoch=157, seconds_per_image_train=1 / 15, seconds_per_image_eval=1 / 60,
                         available=available, tta_cost=2 * 7.0, **kw)
    partial = plan_unfrozen(iters_per_epoch=156, seconds_per_image_train=1 / 130, seconds_per_image_eval=1 / 1000,
                            available=available, tta_cost=7.0, setup_cost=10.0, sweep=False, **kw)
    # partial: epoch 5000/130 + 1000/1000 = 39.5 s; no sweep; 60 - 10 - 7 = 43 s -> 1 epoch
    assert partial["epoch_cost"] == pytest.approx(39.4615, abs=1e-4) and partial["sweep_iters"] == 0
    assert partial["sweep_cost"] == 0.0
    assert (full["cycles"], partial["cycles"], partial["setup_cost"], partial["available"]) == (0, 1, 10.0, 60.0)
    chosen = choose_fine_tuning(full, partial)
    assert chosen["mode"] == "partial" and chosen["epochs"] == 1
    # the maps' pass is paid once: 20 s more of it and the epoch no longer fits
    dearer = plan_unfrozen(iters_per_epoch=156, seconds_per_image_train=1 / 130, seconds_per_image_eval=1 / 1000,
                           available=available, tta_cost=7.0, setup_cost=30.0, sweep=False, **kw)
    none = choose_fine_tuning(full, dearer)
    assert none["mode"] == "none" and none["cycles"] == 0 and none["partial_epoch_cost"] == dearer["epoch_cost"]
    # on a GPU-like machine the full plan affords as many cycles: every layer trains
    fast = plan_unfrozen(iters_per_epoch=157, seconds_per_image_train=1e-3, seconds_per_image_eval=1e-4,
                         available=available, tta_cost=1.0, **kw)
    assert choose_fine_tuning(fast, partial)["mode"] == "full"
    assert choose_fine_tuning(full, None)["mode"] == "none"


def test_the_plan_line_says_what_it_chose_and_the_cycle_length_when_it_is_not_1():
    from visiontune.run.fine_tune import describe

    partial = dict(mode="partial", setup_cost=0.0, epoch_cost=14.2, full_epoch_cost=201.0, available=38.0,
                   epochs=2, cycles=1, cycle_len=2)
    assert describe(partial) == ("partial fine-tuning (the late layer group and the head, on cached early-group "
                                 "maps): ~0 s for the maps, ~14.2 s per epoch (a full unfrozen epoch: ~201 s), "
                                 "38 s available -> 2 epoch(s) in 1 SGDR cycle(s) of cycle_len 2")
    full = dict(mode="full", epoch_cost=3.0, available=30.0, epochs=7, cycles=3, cycle_len=1)
    assert describe(full) == "unfrozen phase: ~3.0 s per epoch, 30 s available -> 7 epoch(s) in 3 SGDR cycle(s)"
