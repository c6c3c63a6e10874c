"""tfms_from_model, presets, normalisation and denorm."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from visiontune.imaging.views import VIEW_NAMES, tta_views, view_image
from visiontune.transforms import (CropType, ImageTransforms, tfms_from_model, transforms_basic, transforms_side_on,
                                   transforms_top_down)
from visiontune.transforms.augment import RandomDihedral, RandomFlip, RandomLighting, RandomRotate


def _img(w=80, h=60, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_stats_come_from_the_arch():
    trn, val = tfms_from_model("resnet34", 64)
    assert trn.mean == val.mean == pytest.approx((0.485, 0.456, 0.406))
    assert trn.std == pytest.approx((0.229, 0.224, 0.225))
    for arch in ("efficientnet_lite0", None):
        trn, val = tfms_from_model(arch, 64)
        assert trn.mean == (0.5, 0.5, 0.5) and val.std == (0.5, 0.5, 0.5)
    from visiontune.models.registry import resnet34

    assert tfms_from_model(resnet34, 32)[0].mean == pytest.approx((0.485, 0.456, 0.406))


def test_efficientnet_inputs_scaled_to_minus_one_one():
    _, val = tfms_from_model(None, 8)
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 1, 2)
    out = val.normalize(x)
    assert out.min().item() == -1.0 and out.max().item() == 1.0


@pytest.mark.parametrize("size", [(80, 60), (60, 80), (33, 33), (500, 20), (10, 10)])
@pytest.mark.parametrize("crop_type", list(CropType))
def test_outputs_uint8_chw_of_size_sz(size, crop_type):
    trn, val = tfms_from_model("resnet34", 32, aug_tfms=transforms_top_down, max_zoom=1.2, crop_type=crop_type)
    for t in (trn, val):
        x = t(_img(*size))
        assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 32, 32)


def test_validation_is_deterministic_and_training_random():
    trn, val = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.1)
    im = _img()
    assert torch.equal(val(im), val(im))
    torch.manual_seed(0)
    outs = [trn(im) for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    torch.manual_seed(0)
    assert all(torch.equal(a, trn(im)) for a in outs)  # seeded: reproducible


def test_validation_center_crop_with_crop_pct():
    im = Image.new("RGB", (100, 100), (0, 0, 0))
    im.paste((255, 255, 255), (25, 25, 75, 75))  # white square in the middle half
    _, val = tfms_from_model("resnet34", 50, crop_pct=0.5)  # short side -> 100, centre 50 = all white
    assert val(im).float().mean().item() > 250
    _, val1 = tfms_from_model("resnet34", 50)  # crop_pct=1: whole image
    assert 50 < val1(im).float().mean().item() < 80  # a quarter of the area is white


@pytest.mark.parametrize("size", [(333, 250), (250, 333), (224, 224), (225, 1000), (1001, 230), (91, 64)])
@pytest.mark.parametrize("crop_pct", [1.0, 0.875])
def test_validation_crop_matches_resize_then_centre_crop(size, crop_pct):
    """The validation transform resizes only the crop's source box: the pixels of torchvision's
    resize + centre crop (to +-1 of 255, rounding), at a fraction of the cost."""
    from torchvision.transforms.v2 import functional as F

    rng = np.random.default_rng(sum(size))
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    im = im.resize(size).filter(ImageFilter.SMOOTH)  # image-like: neighbouring pixels correlate
    _, val = tfms_from_model("resnet34", 64, crop_pct=crop_pct)
    short = max(64, round(64 / crop_pct))
    expected = F.pil_to_tensor(F.center_crop(F.resize(im, short, antialias=True), [64, 64]))
    got = val(im)
    assert got.shape == expected.shape == (3, 64, 64)
    assert (got.int() - expected.int()).abs().max().item() <= 1


def test_crop_type_no_squashes():
    im = Image.new("RGB", (100, 50), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 50))  # white strip at the far left
    trn, _ = tfms_from_model("resnet34", 20, crop_type=CropType.NO)
    x = trn(im)
    assert x[:, :, 0].float().mean() > 200  # the strip survives squashing (no crop)
    trn_c, _ = tfms_from_model("resnet34", 20, crop_type=CropType.CENTER)
    assert trn_c(im)[:, :, 0].float().mean() < 50  # a centre crop loses it


def test_presets_are_picklable_lists():
    assert isinstance(transforms_basic, list)
    assert any(isinstance(t, RandomRotate) for t in transforms_basic)
    assert any(isinstance(t, RandomLighting) for t in transforms_basic)
    assert any(isinstance(t, RandomFlip) for t in transforms_side_on)
    assert any(isinstance(t, RandomDihedral) for t in transforms_top_down)
    assert not any(isinstance(t, RandomFlip) for t in transforms_top_down)
    tfms = tfms_from_model("resnet34", 32, aug_tfms=transforms_top_down, max_zoom=1.1)
    trn2, val2 = pickle.loads(pickle.dumps(tfms))
    assert tuple(trn2(_img()).shape) == (3, 32, 32)


def test_dihedral_gives_all_eight_views():
    arr = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    im = Image.fromarray(arr)
    torch.manual_seed(1)
    seen = {np.asarray(RandomDihedral()(im)).tobytes() for _ in range(200)}
    assert len(seen) == 8


def test_rotate_keeps_size_and_has_no_black_corners():
    im = Image.new("RGB", (60, 40), (200, 200, 200))
    torch.manual_seed(0)
    rot = RandomRotate(10, p=1.0)
    for _ in range(5):
        out = rot(im)
        assert out.size == (60, 40)
        assert np.asarray(out).min() > 150  # reflected borders, not black


def test_lighting_is_small():
    im = Image.new("RGB", (8, 8), (100, 150, 200))
    torch.manual_seed(0)
    for _ in range(10):
        out = np.asarray(RandomLighting(0.05, 0.05)(im)).astype(int)
        assert np.abs(out - np.array([100, 150, 200])).max() <= 15


def test_normalize_denorm_round_trip():
    trn, val = tfms_from_model("resnet34", 16)
    im = _img(16, 16)
    x = val(im)
    assert torch.equal(x.permute(1, 2, 0), torch.from_numpy(np.array(im)))  # nothing resampled
    xn = val.normalize(x.unsqueeze(0))
    assert xn.dtype == torch.float32
    back = val.denorm(xn)
    assert back.shape == (1, 16, 16, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back[0] * 255, np.asarray(im), atol=1e-3)
    np.testing.assert_allclose(val.denorm(xn[0]), back[0])  # single CHW -> HWC


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="sz must be a positive int"):
        tfms_from_model("resnet34", 0)
    with pytest.raises(ValueError, match="max_zoom"):
        tfms_from_model("resnet34", 32, max_zoom=0.5)
    with pytest.raises(ValueError, match="crop_type"):
        tfms_from_model("resnet34", 32, crop_type="diagonal")
    with pytest.raises(TypeError, match="callables"):
        tfms_from_model("resnet34", 32, aug_tfms=[3])
    with pytest.raises(ValueError, match="unknown architecture"):
        tfms_from_model("not_a_net_xyz", 32)


def test_tta_views_and_min_side():
    trn, val = tfms_from_model("resnet34", 32, aug_tfms=transforms_side_on, max_zoom=1.5, crop_pct=0.8)
    img = _img()
    views = [val.with_view(name)(img) for name in tta_views(4)]
    assert [v.shape for v in views] == [(3, 32, 32)] * 5 and views[0].dtype == torch.uint8
    assert torch.equal(views[0], val(img))  # the clean view is the validation transform
    assert torch.equal(views[1], views[0].flip(-1)) and torch.equal(views[3], views[2].flip(-1))
    assert len({v.numpy().tobytes() for v in views}) == 5
    # the same pixels ExportedModel feeds its model (imaging.views, torch-free)
    for name, v in zip(VIEW_NAMES, views):
        ref = np.asarray(view_image(img, name, sz=32, crop_pct=0.8, interpolation=val.interpolation))
        assert np.array_equal(v.permute(1, 2, 0).numpy(), ref), name
    assert trn.min_side == 48 and val.min_side == 40 and val.with_view("zoom_in").min_side == 46
    with pytest.raises(ValueError, match="validation transforms"):
        trn.with_view("hflip")
    with pytest.raises(ValueError, match="n_aug must be between 0 and 4"):
        tta_views(5)
    assert isinstance(trn, ImageTransforms) and trn.train and not val.train
