"""The modules the learner delegates to: its checkpoint state, the layer groups' values and lr_find's stop."""
import copy

import numpy as np
import pytest
import torch

from visiontune.train import freezing
from visiontune.train.lr_find import LR_FIND_WARMUP, sweep
from visiontune.train.recorder import Recorder


def test_state_dict_round_trip_restores_weights_and_schedule(make_learner):
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 1)
    state = copy.deepcopy(learn.state_dict())  # on the CPU its tensors are the model's, as nn.Module's are
    assert set(state) == {"model", "sched_lrs", "sched_losses", "n_frozen", "precompute"}
    assert (state["n_frozen"], state["precompute"]) == (2, True)
    assert all(v.device.type == "cpu" for v in state["model"].values())
    assert state["sched_lrs"] == list(learn.sched.lrs) and len(state["sched_losses"]) == len(learn.sched.lrs) > 0
    last = [m for m in learn.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    head_before = last.weight.detach().clone()
    with torch.no_grad():
        last.weight.add_(1.0)
    learn.sched.lrs.clear()
    learn.sched.losses.clear()
    learn.load_state_dict(state)
    assert torch.equal(last.weight.detach(), head_before)
    assert learn.sched.lrs == state["sched_lrs"] and learn.sched.losses == state["sched_losses"]


def test_group_values_spread_one_number_and_refuse_a_wrong_count():
    assert freezing.group_values(1e-2, "lrs") == [1e-2, 1e-2, 1e-2]
    assert freezing.group_values(None, "wds") == [0.0, 0.0, 0.0]
    assert freezing.group_values(np.array([1e-4, 1e-3, 1e-2]), "lrs") == [1e-4, 1e-3, 1e-2]
    with pytest.raises(ValueError, match=r"^lrs has 2 values but the model has 3 layer groups \(early body, late "
                                         r"body, head\); pass one number or 3$"):
        freezing.group_values([1e-3, 1e-2], "lrs")


def test_sweep_stops_when_the_smoothed_loss_passes_four_times_its_best():
    def run_epoch(epoch, it, on_batch):  # flat loss for the warm-up, then it explodes
        for i in range(it, it + 50):
            loss = 1.0 if i < LR_FIND_WARMUP + 5 else 1000.0
            if on_batch(i, loss, 0.1 * i):
                return loss, i + 1, True
        return 1.0, it + 50, False

    rec = Recorder(kind="lr_find")
    sweep(run_epoch, rec, num_it=200, stop_div=True)
    assert len(rec.losses) == LR_FIND_WARMUP + 6  # the first exploding batch stops it
    rec2 = Recorder(kind="lr_find")
    sweep(run_epoch, rec2, num_it=120, stop_div=False)
    assert len(rec2.losses) == 150  # no stop: whole epochs until num_it is reached
