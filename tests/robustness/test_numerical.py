"""Numerical failures: a NaN/Inf loss stops training with a clear message and keeps the last good
weights; lr_find stops at divergence and restores the weights bit for bit. Plus CPU determinism."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from vt_zoo import make_class_images

from visiontune import ConvLearner, ImageClassifierData, tfms_from_model
from visiontune.train.callbacks import Callback
from visiontune.train.learner import set_seed
from visiontune.train.loop import TrainingDiverged


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("num") / "ds"
    for split, n, seed in (("train", 6, 0), ("valid", 3, 100)):
        for c, col in (("red", (160, 90, 90)), ("blue", (90, 90, 160))):
            make_class_images(root / split / c, col, n, seed=seed)
    return ImageClassifierData.from_paths(root, bs=4, tfms=tfms_from_model("efficientnet_lite0", 32), num_workers=0)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("acts")  # activations computed once for the tests that do not care


def learner(data, cache_dir, precompute=True, seed=0):
    set_seed(seed)
    return ConvLearner.pretrained("efficientnet_lite0", data, precompute=precompute, cache_dir=cache_dir,
                                  models_path=cache_dir / "models", device="cpu", verbose=False, engine="torch")


class Snapshots(Callback):
    """The model's weights after each completed epoch."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, learner, epoch, logs):
        self.states.append(copy.deepcopy(learner.model.state_dict()))
        return False


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_diverged_run(learn, lr, before, n_epochs=3):
    snaps = Snapshots()
    with pytest.raises(TrainingDiverged) as ei:
        learn.fit(lr, n_epochs, callbacks=[snaps])
    msg = str(ei.value)
    assert msg.startswith(("the training loss became nan", "the training loss became inf",
                           "the validation loss became")), msg
    assert "lower the learning rate (try learn.lr_find()) and train again" in msg and "\n" not in msg
    after = learn.model.state_dict()
    last_good = snaps.states[-1] if snaps.states else before
    assert same_state(after, last_good)  # exactly the last good weights, not the diverged ones
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert all(np.isfinite(learn.validate()))


def test_divergence_on_the_precompute_path(data, shared_cache):
    learn = learner(data, shared_cache, precompute=True)
    learn.fit(1e-3, 1)  # a sane epoch first
    check_diverged_run(learn, 1e30, copy.deepcopy(learn.model.state_dict()))


def test_divergence_when_fine_tuning(data, shared_cache):
    learn = learner(data, shared_cache, precompute=False)
    learn.unfreeze()
    check_diverged_run(learn, 1e4, copy.deepcopy(learn.model.state_dict()), n_epochs=2)


def test_lr_find_stops_at_divergence_and_restores_bit_identically(data, shared_cache):
    learn = learner(data, shared_cache, precompute=False)
    learn.unfreeze()
    before = copy.deepcopy(learn.model.state_dict())
    rng = torch.get_rng_state()
    num_it = 12
    sched = learn.lr_find(start_lr=1e-1, end_lr=1e12, num_it=num_it)
    assert 2 <= len(sched.losses) < num_it  # stopped early, at divergence
    assert same_state(learn.model.state_dict(), before)  # every weight and BN buffer, bit for bit
    assert torch.equal(torch.get_rng_state(), rng)


def test_lr_find_restores_after_a_nan_loss(data, shared_cache):
    """Same, on the precompute path and with a rate range that hits NaN/Inf within a few steps."""
    learn = learner(data, shared_cache, precompute=True)
    before = copy.deepcopy(learn.model.state_dict())
    sched = learn.lr_find(start_lr=1e3, end_lr=1e35, num_it=30)
    assert len(sched.losses) < 30
    assert same_state(learn.model.state_dict(), before)


@pytest.mark.parametrize("precompute", [True, False], ids=["precompute", "fine-tune"])
def test_same_seed_same_metrics_on_cpu(data, tmp_path, precompute):
    """Twice with the same seed: the first run fills the activation cache, the second reads it; that must
    not change the numbers (reading the validation loader used to draw on torch's global RNG)."""
    logs = []
    for _ in range(2):
        learn = learner(data, tmp_path / "cache", precompute=precompute, seed=3)  # cold, then warm
        logs.append(learn.fit(1e-2, 2, seed=3))
    for a, b in zip(*logs):
        for k in ("trn_loss", "val_loss", "accuracy"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=k)
