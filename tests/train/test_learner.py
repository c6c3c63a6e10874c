import math
import os
import time

import numpy as np
import pytest
import torch

from visiontune import ConvLearner, accuracy
from visiontune.models.heads import ConcatPool
from visiontune.train.schedules import sgdr_multipliers


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_precompute_fit_learns_and_records_sgdr_rates(make_learner):
    learn = make_learner(precompute=True)
    logs = learn.fit(1e-2, 2, cycle_len=1, cycle_mult=2)
    assert len(logs) == 3  # 1 + 2 epochs
    ipe = len(learn.sched.lrs) // 3
    expected = np.array(sgdr_multipliers(2, 1, 2, ipe)) * 1e-2
    assert np.allclose(learn.sched.lrs, expected, rtol=0, atol=1e-15)
    assert logs[-1]["accuracy"] >= 0.9


def test_lr_find_restores_weights_bit_identically(make_learner):
    learn = make_learner(precompute=True)
    before = _snapshot(learn.model)
    sched = learn.lr_find(num_it=30)
    assert _changed(before, _snapshot(learn.model)) == set()
    assert sched.kind == "lr_find" and len(sched.lrs) >= 5
    assert sched.lrs[0] == pytest.approx(1e-5)
    assert sched.suggestion is not None and 1e-6 < sched.suggestion < 10


def test_lr_find_on_images_restores_weights_and_bn_stats(make_learner):
    learn = make_learner(precompute=False)
    learn.unfreeze()
    before = _snapshot(learn.model)
    learn.lr_find(num_it=3)
    assert _changed(before, _snapshot(learn.model)) == set()


def test_lr_find_default_sweep_is_long_enough_to_plot_on_a_small_set(make_learner):
    """24 training images make 3 batches of 8: fastai 0.7's one-epoch sweep would be 3 points (and
    visiontune raised for fewer than 2). The default is 100 iterations, cycling the data; a sweep of
    2 still plots."""
    from visiontune.train.learner import LR_FIND_MIN_ITERS
    from visiontune.train.recorder import plot_window

    learn = make_learner(precompute=True)
    sched = learn.lr_find()
    ratio = (10 / 1e-5) ** (1 / (LR_FIND_MIN_ITERS - 1))
    assert len(sched.lrs) > 20
    assert np.allclose(sched.lrs[:3], [1e-5, 1e-5 * ratio, 1e-5 * ratio**2], rtol=1e-9)
    start, end = plot_window(len(sched.lrs), 10, 5)
    assert (start, end) == (10, len(sched.lrs) - 5)
    fig = sched.plot()
    assert len(fig.axes[0].lines[0].get_xdata()) == end - start

    one_batch = make_learner(precompute=False, bs=64)  # 24 images: one batch an epoch
    one_batch.unfreeze()
    sched = one_batch.lr_find(num_it=2)
    assert np.allclose(sched.lrs, [1e-5, 10], rtol=1e-9)
    assert len(sched.plot().axes[0].lines[0].get_xdata()) == 2


def test_lr_find_does_not_stop_in_its_first_iterations(make_learner):
    """fastai's rule: the best loss (for the 4x stop) is tracked only after 10 iterations, so the noisy
    start of a sweep over an already trained head runs on."""
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 3)
    sched = learn.lr_find(num_it=9)
    assert len(sched.lrs) == 9 and sched.lrs[-1] == pytest.approx(10)


def test_freeze_trains_only_the_head_and_keeps_body_bn_statistics(make_learner):
    learn = make_learner(precompute=False)
    before = _snapshot(learn.model)
    learn.fit(1e-2, 1)
    changed = _changed(before, _snapshot(learn.model))
    assert changed and all(k.startswith("head.") for k in changed)


def test_unfreeze_trains_body_weights_but_not_bn_running_stats(make_learner):
    learn = make_learner(precompute=False)
    learn.unfreeze()
    before = _snapshot(learn.model)
    learn.fit(np.array([1e-4, 1e-3, 1e-2]), 1)
    changed = _changed(before, _snapshot(learn.model))
    body_changed = {k for k in changed if k.startswith("body.")}
    assert any(k.endswith("conv_stem.weight") for k in body_changed)  # early group trains
    assert any("blocks.6" in k for k in body_changed)  # late group trains
    assert not any(k.endswith(("running_mean", "running_var")) for k in body_changed)  # BN stats frozen


def test_freeze_to_one_keeps_the_early_group(make_learner):
    learn = make_learner(precompute=False)
    learn.freeze_to(1)
    before = _snapshot(learn.model)
    learn.fit([1e-4, 1e-3, 1e-2], 1)
    changed = _changed(before, _snapshot(learn.model))
    assert not any(k.startswith("body.model.conv_stem") or k.startswith("body.model.blocks.0") for k in changed)
    assert any(k.startswith("body.model.blocks.6") for k in changed)


def test_bn_freeze_false_uses_batch_statistics(make_learner):
    learn = make_learner(precompute=False)
    learn.unfreeze()
    learn.bn_freeze(False)
    before = _snapshot(learn.model)
    learn.fit(1e-3, 1)
    changed = _changed(before, _snapshot(learn.model))
    assert any(k.startswith("body.") and k.endswith("running_mean") for k in changed)


def test_differential_rates_need_one_value_per_group(make_learner):
    learn = make_learner(precompute=True)
    with pytest.raises(ValueError, match="3 layer groups"):
        learn.fit([1e-3, 1e-2], 1)


def test_save_then_load_round_trips(make_learner, tmp_path):
    learn = make_learner(precompute=True, models_path=tmp_path)
    learn.fit(1e-2, 1)
    path = learn.save("224_lastlayer")
    assert path == tmp_path / "224_lastlayer.safetensors" and path.read_bytes()[:8]
    saved = _snapshot(learn.model)
    preds = learn.predict()
    learn.fit(1e-1, 1)
    assert _changed(saved, _snapshot(learn.model))
    learn.load("224_lastlayer")
    assert _changed(saved, _snapshot(learn.model)) == set()
    assert np.allclose(learn.predict(), preds)


def test_precompute_cache_reused_then_rebuilt_after_a_file_changes(tiny_path, tmp_path, make_learner):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_path, root)
    learn = make_learner(precompute=True, path=root, cache_dir=tmp_path / "c")
    assert learn.cache.computed == 3  # train, valid, test
    again = make_learner(precompute=True, path=root, cache_dir=tmp_path / "c")
    assert again.cache.computed == 0 and again.cache.hits == 3
    target = root / "valid" / "discs" / "discs_0.jpg"
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(target)).copy()
    img[:10] = 255
    __import__("PIL.Image", fromlist=["Image"]).fromarray(img).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    third = make_learner(precompute=True, path=root, cache_dir=tmp_path / "c")
    assert third.cache.computed == 1 and third.cache.hits == 2  # only the validation split is rebuilt


def test_a_different_size_or_backbone_weights_never_hits_a_stale_cache(make_learner, tmp_path):
    a = make_learner(precompute=True, cache_dir=tmp_path / "c")
    b = make_learner(precompute=True, cache_dir=tmp_path / "c", sz=72)
    assert b.cache.computed == 3
    c = make_learner(precompute=True, cache_dir=tmp_path / "c", pretrained=False)
    assert c.cache.computed == 3


def test_precompute_off_keeps_the_head(make_learner):
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 1)
    head = _snapshot(learn.head)
    learn.precompute = False
    assert _changed(head, _snapshot(learn.head)) == set()
    vals_images = learn.validate()
    learn.precompute = True
    assert np.allclose(vals_images, learn.validate(), atol=1e-4)


def test_tta_returns_log_probs_and_cached_equals_uncached(make_learner):
    learn = make_learner(precompute=True)
    learn.fit(1e-2, 2)
    t0 = time.perf_counter()
    log_preds, y = learn.TTA()
    first = time.perf_counter() - t0
    assert log_preds.shape == (len(y), 2)
    assert np.allclose(np.exp(log_preds).sum(1), 1, atol=1e-5)
    t0 = time.perf_counter()
    again, _ = learn.TTA()
    second = time.perf_counter() - t0
    assert np.allclose(again, log_preds)
    assert second < first
    # uncached: the same views computed through the whole model on images
    learn.precompute = False
    learn.unfreeze()  # body no longer counts as frozen: TTA runs the images through the model
    uncached, y2 = learn.TTA()
    assert np.array_equal(y, y2)
    assert np.abs(np.exp(uncached) - np.exp(log_preds)).max() < 1e-3
    assert accuracy(log_preds, y) >= 0.9


def test_tta_averages_the_named_views_the_export_uses(make_learner):
    """TTA is the clean view plus the first n_aug views of imaging.views, each through the validation
    transform of that view: deterministic (no seed matters) and the same as ExportedModel's."""
    from visiontune.imaging.views import tta_views

    learn = make_learner(precompute=True)
    learn.fit(1e-2, 1)
    clean, y = learn.predict_with_targs()
    two, _ = learn.TTA(n_aug=2)
    per_view = [np.exp(clean)] + [np.exp(learn._view_outputs("valid", name)) for name in tta_views(2)[1:]]
    np.testing.assert_allclose(np.exp(two), np.mean(per_view, axis=0), atol=1e-6)
    assert not np.allclose(two, clean)  # the mirror and the zoom are other pixels
    np.testing.assert_array_equal(learn.TTA(n_aug=2, seed=1)[0], two)  # deterministic views
    np.testing.assert_allclose(np.exp(learn.TTA(n_aug=0)[0]), np.exp(clean), atol=1e-6)
    with pytest.raises(ValueError, match="n_aug must be between 0 and 4"):
        learn.TTA(n_aug=5)


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_weights(make_learner):
    from visiontune.train.loop import TrainingDiverged

    learn = make_learner(precompute=False)
    learn.unfreeze()
    seen = []

    class Spy(__import__("visiontune.train.callbacks", fromlist=["Callback"]).Callback):
        def on_epoch_end(self, learner, epoch, logs):
            seen.append(_snapshot(learner.model))

    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        learn.fit(1e4, 3, callbacks=[Spy()])
    after = _snapshot(learn.model)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    if seen:  # the weights after the last epoch that ended with finite losses
        assert _changed(seen[-1], after) == set()
    assert np.isfinite(learn.predict()).all()


def test_second_learner_on_the_same_data_runs_no_forward_pass(make_learner, tmp_path, monkeypatch):
    import visiontune.features.engine as engine_mod

    make_learner(precompute=True, cache_dir=tmp_path / "c", precompute_aug=2)
    calls = []
    real = engine_mod.run_engine
    monkeypatch.setattr(engine_mod, "run_engine", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = make_learner(precompute=True, cache_dir=tmp_path / "c", precompute_aug=2)
    assert calls == [] and second.cache.computed == 0 and second.cache.hits == 5  # train, valid, test, 2 aug views
    second.fit(1e-2, 1)
    second.TTA(n_aug=2)  # the TTA views are computed once...
    n_after_first_tta = len(calls)
    second.TTA(n_aug=2)  # ...and the second call only runs the head
    assert len(calls) == n_after_first_tta == 2


def test_augmented_activations_give_each_epoch_different_views(make_learner, tmp_path):
    learn = make_learner(precompute=True, cache_dir=tmp_path / "c", precompute_aug=3)
    clean = np.asarray(learn.activations("train"))
    views = [np.asarray(learn.activations("train", f"aug{k}")) for k in range(3)]
    assert all(v.shape == clean.shape for v in views)
    assert all(not np.allclose(v, clean) for v in views)  # augmentation changed the activations
    e1 = np.concatenate([x.numpy() for x, _ in learn._train_act_batches(1)])
    e2 = np.concatenate([x.numpy() for x, _ in learn._train_act_batches(2)])
    assert not np.allclose(np.sort(e1, axis=0), np.sort(e2, axis=0))


def test_regression_head_starts_at_the_training_mean(tmp_path):
    """Zero last-layer weights and the targets' mean as bias: the untrained model predicts the mean."""
    from visiontune import ImageClassifierData, tfms_from_model
    from visiontune.train.learner import start_at_target_mean

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    y_trn = rng.uniform(100, 300, (8, 2)).astype(np.float32)  # two targets on a scale far from 0
    data = ImageClassifierData.from_arrays(tmp_path, (x[:8], y_trn), (x[8:], rng.uniform(100, 300, (4, 2))),
                                           bs=4, tfms=tfms_from_model("efficientnet_lite0", 32), num_workers=0,
                                           is_reg=True)
    learn = ConvLearner.pretrained("efficientnet_lite0", data, cache_dir=tmp_path / "cache", verbose=False)
    preds, _ = learn.predict_with_targs()
    np.testing.assert_allclose(preds, np.broadcast_to(y_trn.mean(0), (4, 2)), rtol=1e-5)
    head = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    start_at_target_mean(head, [1.0, 2.0, 6.0])
    assert float(head[2].bias.detach()) == 3.0 and not head[2].weight.any() and head[0].weight.any()
