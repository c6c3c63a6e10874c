"""Partial fine-tuning (``learn.cache_early``): the late group and the head train on cached early-group maps."""
import numpy as np
import pytest
import torch

from visiontune.train.early_maps import depthwise_convs, early_late, keep_pretrained


def _params(modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def test_partial_fine_tuning_changes_the_late_group_and_not_the_early_one(make_learner):
    learn = make_learner(precompute=True)  # an untrained head: the first step's gradients reach every layer
    early, late, head = learn.get_layer_groups()
    early_before, late_before, head_before = _params(early), _params(late), _params(head)

    learn.cache_early = True
    assert learn.cache_early and learn.n_frozen == 1 and not learn.precompute
    n_trn, n_val = len(learn.data.trn_ds), len(learn.data.val_ds)
    assert learn._early.maps["train"].shape[0] == n_trn and learn._early.maps["train"].dtype == torch.bfloat16
    assert learn._early.maps["valid"].shape[0] == n_val and learn._early.maps["valid"].dtype == torch.float32
    learn.fit([1e-3, 1e-2, 1e-2], 1)

    early_after, late_after, head_after = _params(early), _params(late), _params(head)
    assert all(torch.equal(a, b) for a, b in zip(early_before, early_after))
    # the late group: its depthwise kernels and what runs before the first of them are kept (keep_pretrained);
    # every other convolution trains
    names = [n for n, _ in learn.body.model.named_parameters() if n.startswith(("blocks.5", "blocks.6", "conv_head", "bn2"))]
    assert len(names) == len(late_before)
    kept = {n for n in names if "conv_dw" in n} | {"blocks.5.0.conv_pw.weight", "blocks.5.0.bn1.weight",
                                                   "blocks.5.0.bn1.bias"}
    assert len(kept) == 8  # 5 depthwise kernels (blocks.5.0-3, blocks.6.0) and the first expansion with its BatchNorm
    assert all(torch.equal(b, a) for n, b, a in zip(names, late_before, late_after) if n in kept)
    convs = [i for i, (n, p) in enumerate(zip(names, late_before)) if p.dim() == 4 and n not in kept]
    assert len(convs) >= 10 and all(not torch.equal(late_before[i], late_after[i]) for i in convs)
    assert any(not torch.equal(a, b) for a, b in zip(head_before, head_after))
    # BatchNorm running statistics of the late group are kept (bn_freeze, the default)
    bn = [m for mod in late for m in mod.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(int(m.num_batches_tracked) == 0 for m in bn)


def test_outputs_from_maps_are_the_models_outputs_on_images(make_learner):
    learn = make_learner(precompute=True)
    learn.cache_early = True
    learn.fit([1e-3, 1e-2, 1e-2], 1)
    from_maps, y = learn.predict_with_targs()
    learn.cache_early = False  # freeze_to(1) stays: the model now runs on the images
    from_images, y2 = learn.predict_with_targs()
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_allclose(from_maps, from_images, atol=2e-3)


def test_maps_follow_the_early_weights(make_learner):
    learn = make_learner(precompute=False)
    learn.cache_early = True
    first = learn._early.get("valid").clone()
    with torch.no_grad():
        learn.body.model.conv_stem.weight.mul_(0.5)
    assert not torch.equal(learn._early.get("valid"), first)


def test_setting_precompute_or_unfreezing_ends_partial_fine_tuning(make_learner):
    learn = make_learner(precompute=False)
    learn.cache_early = True
    learn.unfreeze()
    assert not learn.cache_early and learn.n_frozen == 0
    learn.cache_early = True
    learn.precompute = True
    assert not learn.cache_early


def test_a_body_that_is_not_its_groups_in_sequence_is_refused(make_learner):
    learn = make_learner(precompute=False)
    body = learn.body
    original = body.model.forward_features
    body.model.forward_features = lambda x: original(x) * 2  # a forward that is not the modules in order
    try:
        with pytest.raises(ValueError, match="its modules in sequence"):
            early_late(body)
    finally:
        del body.model.forward_features


def test_keep_pretrained_stops_the_backward_pass_at_the_first_depthwise_convolution():
    """Depthwise kernels and everything registered before the first of them lose their gradients; a group
    without depthwise convolutions (a ResNet's) trains whole."""
    from torch import nn

    late = nn.Sequential(nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 4, 1),
                         nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 4, 3))
    assert depthwise_convs(late) == [late[2], late[4]]
    kept = keep_pretrained(late)
    assert [p.requires_grad for p in late.parameters()] == [False] * 6 + [True, True, False, False, True, True]
    assert len(kept) == 8  # 6 up to the first depthwise (its bias included) + the second's weight and bias
    plain = nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=2))  # grouped, not depthwise
    assert keep_pretrained(plain) == [] and all(p.requires_grad for p in plain.parameters())
