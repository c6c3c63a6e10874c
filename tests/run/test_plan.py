"""The recipe's budget and cost planning (run/plan.py): exact values from made-up costs, no data."""
from __future__ import annotations

import pytest

from visiontune.run.plan import affordable_aug_views, affordable_tta_views, plan_unfrozen, sgdr_cycles


@pytest.mark.parametrize("epochs,max_cycles,want", [(0, 3, 0), (1, 3, 1), (2, 3, 1), (3, 3, 2), (6, 3, 2), (7, 3, 3),
                                                   (100, 3, 3), (100, 0, 0)])
def test_sgdr_cycles_fit_whole_cycles_of_1_2_4_epochs(epochs, max_cycles, want):
    assert sgdr_cycles(epochs, max_cycles) == want


def test_unfrozen_plan_spends_what_is_left_after_tta_and_the_sweep_on_whole_cycles():
    kw = dict(n_trn=1000, n_val=200, bs=32, iters_per_epoch=32, seconds_per_image_train=0.05,
              seconds_per_image_eval=0.01, n_tta=4, max_cycles=3)
    plan = plan_unfrozen(available=300.0, **kw)
    # epoch 1000*0.05 + 200*0.01 = 52 s; TTA 200*5*0.01 = 10 s; sweep round(75/1.6)=47 -> 20 batches = 32 s
    assert plan == {"seconds_per_image_train": 0.05, "seconds_per_image_eval": 0.01, "epoch_cost": 52.0,
                    "sweep_iters": 20, "sweep_cost": 32.0, "tta_cost": 10.0, "available": 300.0,
                    "cycles": 2, "epochs": 3, "world_size": 1}  # (300-10-32)//52 = 4 epochs -> 1+2
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
