"""The GPU path's data side: batched augmentation (transforms/batched.py) and decode + pre-size (data/gpu_decode.py).

Everything runs on the CPU (the batched ops are device-agnostic); only the nvJPEG decode test needs CUDA.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from visiontune import ConvLearner, ImageClassifierData, efficientnet_lite0
from visiontune.data.gpu_decode import PresizeTransform, decode_presized, gpu_train_loader
from visiontune.imaging.decode import load_image
from visiontune.transforms import (CropType, RandomRotate, imagenet_stats, tfms_from_model, tfms_from_stats,
                                   transforms_side_on, transforms_top_down)
from visiontune.transforms.augment import _DIHEDRAL
from visiontune.transforms.batched import AugParams, BatchedAugment

MEAN, STD = imagenet_stats


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(size: int = 48, h: int | None = None, seed: int = 0) -> torch.Tensor:
    """A smooth, asymmetric uint8 (3, h, size) test image."""
    h = h or size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:size].astype(np.float64)
    f = rng.uniform(4, 9, 3)
    arr = np.stack([np.sin(xx / f[0]) * 0.4 + yy / h * 0.5, np.cos(yy / f[1]) * 0.3 + xx / size * 0.4,
                    np.sin((xx + 2 * yy) / f[2]) * 0.3 + 0.3])
    return torch.from_numpy(np.clip(arr * 255, 0, 255).astype(np.uint8))


def _normalised(x_uint8: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x_uint8.float() / 255 - mean) / std


def _photo(cls: int, i: int, size: int = 72) -> Image.Image:
    """Stripes (class 0) or a disc (class 1), with some noise (as tests/train/conftest.py)."""
    rng = np.random.default_rng(1000 * cls + i)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if cls == 0:
        base = np.sin(2 * np.pi * (4 + rng.uniform(-1, 1)) * yy)[..., None] * np.array([90, 40, 10]) + np.array([150, 90, 60])
    else:
        r = np.hypot(xx - rng.uniform(0.35, 0.65), yy - rng.uniform(0.35, 0.65))
        base = (r < 0.25)[..., None] * np.array([40, 90, 150]) + np.array([40, 60, 90])
    return Image.fromarray(np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_aug_photos")
    for split, n in (("train", 12), ("valid", 6)):
        for c, name in enumerate(("stripes", "discs")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                _photo(c, i + (0 if split == "train" else 500), size=72 + 8 * (i % 3)).save(d / f"{i}.jpg", quality=92)
    return root


# ----------------------------------------------------------------------------------------- exact geometry
def test_identity_params_give_exactly_the_normalised_batch():
    aug = BatchedAugment(48, MEAN, STD)
    x = torch.stack([_smooth(seed=s) for s in range(3)])
    out = aug.apply(x, AugParams.identity(3))
    assert out.shape == (3, 3, 48, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out, _normalised(x), atol=1e-5, rtol=0)
    # a float input in [0, 1] is the same batch
    torch.testing.assert_close(aug.apply(x.float() / 255, AugParams.identity(3)), out, atol=1e-5, rtol=0)


def test_horizontal_flip_is_exactly_torch_flip():
    aug = BatchedAugment(40, MEAN, STD)
    x = torch.stack([_smooth(40, seed=s) for s in range(4)])
    flip = torch.tensor([True, False, True, True])
    out = aug.apply(x, AugParams.identity(4).with_(flip=flip))
    ref = _normalised(x)
    ref[flip] = torch.flip(ref[flip], dims=[3])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_dihedral_indexes_match_pil_transposes_and_torch_rot90():
    aug = BatchedAugment(32, MEAN, STD)
    x = _smooth(32)
    pil = Image.fromarray(x.permute(1, 2, 0).numpy())
    for k, op in enumerate(_DIHEDRAL):
        ref = torch.from_numpy(np.array(pil if op is None else pil.transpose(op))).permute(2, 0, 1)
        out = aug.apply(x[None], AugParams.identity(1).with_(dihedral=torch.tensor([k])))
        torch.testing.assert_close(out, _normalised(ref[None]), atol=1e-5, rtol=0, msg=f"dihedral {k} ({op})")
    rot90 = aug.apply(x[None], AugParams.identity(1).with_(dihedral=torch.tensor([3])))  # PIL ROTATE_90
    torch.testing.assert_close(rot90, torch.rot90(_normalised(x[None]), 1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_rotation_matches_torchvision_rotate_inside_the_image():
    aug = BatchedAugment(64, MEAN, STD)
    x = _smooth(64).float()[None] / 255
    for angle in (7.5, -30.0, 90.0):
        out = aug.apply(x, AugParams.identity(1).with_(angle=torch.tensor([angle])))
        ref = _normalised(TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR) * 255)
        # torchvision fills the corners black; this path reflects: compare the disc that stays inside
        yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        inside = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 28 ** 2
        assert (out - ref)[..., inside].abs().max() < 1e-4, angle


def test_zoom_and_centre_crop_is_a_central_window():
    # zoom 2 at the centre of a 64-px image = its central 32 x 32 pixels, resampled 1:1
    aug = BatchedAugment(32, MEAN, STD, max_zoom=2)
    x = _smooth(64)[None]
    out = aug.apply(x, AugParams.identity(1).with_(zoom=torch.tensor([2.0])))
    torch.testing.assert_close(out, _normalised(x[..., 16:48, 16:48]), atol=1e-5, rtol=0)
    # centre = (1, -1): the window's right edge on the image's right edge, its top on the top
    out = aug.apply(x, AugParams.identity(1).with_(zoom=torch.tensor([2.0]), center=torch.tensor([[1.0, -1.0]])))
    torch.testing.assert_close(out, _normalised(x[..., 0:32, 32:64]), atol=1e-5, rtol=0)


def test_lighting_equals_torchvision_brightness_then_contrast():
    aug = BatchedAugment(40, MEAN, STD, lighting=(0.05, 0.05))
    x = torch.stack([_smooth(40, seed=s) for s in range(2)]).float() / 255
    b, c = torch.tensor([1.04, 0.96]), torch.tensor([0.97, 1.05])
    out = aug.apply(x, AugParams.identity(2).with_(brightness=b, contrast=c))
    ref = torch.stack([TF.adjust_contrast(TF.adjust_brightness(x[i], float(b[i])), float(c[i])) for i in range(2)])
    torch.testing.assert_close(out, _normalised(ref * 255), atol=1e-4, rtol=0)


def test_non_square_inputs_and_squash():
    x = _smooth(60, h=40)[None]
    out = BatchedAugment(40, MEAN, STD).apply(x, AugParams.identity(1))  # the centre 40 x 40 of a 60 x 40 image
    torch.testing.assert_close(out, _normalised(x[..., :, 10:50]), atol=1e-5, rtol=0)
    sq = BatchedAugment(20, MEAN, STD, crop_type=CropType.NO).apply(x, AugParams.identity(1))
    assert sq.shape == (1, 3, 20, 20)


# ----------------------------------------------------------------------------------------- randomness
def test_seeded_generator_is_deterministic_and_seeds_differ():
    trn, _ = tfms_from_stats(imagenet_stats, 32, aug_tfms=transforms_top_down, max_zoom=1.2)
    aug = BatchedAugment.from_transforms(trn)
    x = torch.stack([_smooth(aug.presize, seed=s) for s in range(6)])
    a, b, c = aug(x, generator=_gen(7)), aug(x, generator=_gen(7)), aug(x, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    torch.manual_seed(3)
    g1 = aug(x)
    torch.manual_seed(3)
    assert torch.equal(g1, aug(x))  # no generator: torch's global one, which torch.manual_seed seeds
    held = BatchedAugment.from_transforms(trn, generator=_gen(5))
    assert torch.equal(held.normalize(x), aug(x, generator=_gen(5)))


def test_parameters_follow_the_configured_distributions():
    n = 20000
    trn, _ = tfms_from_stats(imagenet_stats, 64, aug_tfms=transforms_side_on, max_zoom=1.2)
    p = BatchedAugment.from_transforms(trn).sample(n, generator=_gen(0))
    assert 1.0 <= p.zoom.min() and p.zoom.max() <= 1.2 and abs(p.zoom.mean().item() - 1.1) < 0.005
    assert p.angle.abs().max() <= 10.0
    rotated = p.angle != 0
    assert abs(rotated.float().mean().item() - 0.75) < 0.015  # RandomRotate(10) rotates with p = 0.75
    assert abs(p.angle[rotated].std().item() - 10 / math.sqrt(3)) < 0.1  # uniform on [-10, 10]
    assert abs(p.flip.float().mean().item() - 0.5) < 0.015
    assert (p.dihedral == 0).all()  # side_on: never a vertical flip or a quarter turn
    assert 0.95 <= p.brightness.min() and p.brightness.max() <= 1.05
    assert 0.95 <= p.contrast.min() and p.contrast.max() <= 1.05
    assert p.center.abs().max() <= 1 and abs(p.center.mean().item()) < 0.02

    trn, _ = tfms_from_stats(imagenet_stats, 64, aug_tfms=transforms_top_down, max_zoom=1.2)
    q = BatchedAugment.from_transforms(trn).sample(n, generator=_gen(1))
    counts = torch.bincount(q.dihedral, minlength=8).float() / n
    assert counts.shape == (8,) and (counts - 1 / 8).abs().max() < 0.01
    assert not q.flip.any()

    val_like, _ = tfms_from_stats(imagenet_stats, 64, crop_type=CropType.CENTER)
    r = BatchedAugment.from_transforms(val_like).sample(100, generator=_gen(2))
    assert (r.zoom == 1).all() and (r.angle == 0).all() and (r.center == 0).all()


def test_top_down_turns_and_flips_images_side_on_never_does():
    # a vertical ramp: dark at the top, bright at the bottom
    ramp = torch.linspace(0, 255, 40).view(1, 40, 1).expand(3, 40, 40).to(torch.uint8)
    x = ramp[None].expand(400, -1, -1, -1).contiguous()

    def orientation(tfms_list):
        trn, _ = tfms_from_stats(imagenet_stats, 36, aug_tfms=tfms_list, max_zoom=1.1)
        out = BatchedAugment.from_transforms(trn)(x, generator=_gen(0)).mean(1)
        down = (out[:, 24:].mean((1, 2)) - out[:, :12].mean((1, 2)))  # > 0: still bright at the bottom
        right = (out[:, :, 24:].mean((1, 2)) - out[:, :, :12].mean((1, 2)))
        return down, right

    down, right = orientation(transforms_side_on)  # a 10-degree rotation tilts the ramp by tan(10) < 0.18
    assert (down > 0.5).all() and (right.abs() < 0.3 * down).all()
    down, right = orientation(transforms_top_down)
    upside_down = (down < -3 * right.abs()).float().mean().item()
    quarter = (right.abs() > 3 * down.abs()).float().mean().item()
    assert 0.15 < upside_down < 0.35  # FLIP_TOP_BOTTOM, ROTATE_180: 2 of 8
    assert 0.4 < quarter < 0.6  # ROTATE_90/270, TRANSPOSE, TRANSVERSE: 4 of 8


def test_unsupported_steps_and_bad_inputs_are_clear_errors():
    trn, val = tfms_from_stats(imagenet_stats, 32, aug_tfms=[RandomRotate(5), lambda im: im])
    with pytest.raises(ValueError, match="cannot run the step .*gpu_aug=False"):
        BatchedAugment.from_transforms(trn)
    with pytest.raises(ValueError, match="training transforms"):
        BatchedAugment.from_transforms(val)
    aug = BatchedAugment(8, MEAN, STD)
    with pytest.raises(ValueError, match="NCHW batch with 3 channels"):
        aug(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="NCHW batch with 3 channels"):
        aug(torch.zeros(2, 1, 8, 8))


@pytest.mark.parametrize("aug_tfms", [transforms_side_on, transforms_top_down], ids=["side_on", "top_down"])
def test_views_of_one_image_vary_as_much_as_the_cpu_transforms_views(aug_tfms):
    """Augmentation strength: 300 views of one photo, CPU per-image transforms against the batched path."""
    trn, _ = tfms_from_model(efficientnet_lite0, 64, aug_tfms=aug_tfms, max_zoom=1.1)
    aug, pre = BatchedAugment.from_transforms(trn), PresizeTransform.from_transforms(trn)
    for cls in (0, 1):
        img = _photo(cls, 3, size=96)
        torch.manual_seed(0)
        cpu = trn.normalize(torch.stack([trn(img) for _ in range(300)]))
        gpu = aug(pre(img)[None].expand(300, -1, -1, -1), generator=_gen(0))
        # how much each pixel varies between views (zoom, rotation, crop, flips, lighting); the batched path
        # resamples every view at a sub-pixel offset, which smooths pixel noise a little: a few % less
        spread = gpu.std(0).mean() / cpu.std(0).mean()
        assert 0.85 < spread < 1.1, (cls, spread)
        # the average view (what the augmentation blurs together) is the same picture
        assert (gpu.mean(0) - cpu.mean(0)).abs().mean() < 0.05 * cpu.mean(0).abs().mean() + 0.02


# ----------------------------------------------------------------------------------------- decode + pre-size
def test_presize_equals_the_validation_transform_and_zoom_one_matches_it(photos):
    sz = 64
    trn, val = tfms_from_model(efficientnet_lite0, sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    files = sorted((photos / "valid").rglob("*.jpg"))
    # pre-size to sz: the very same pixels as the CPU validation path (crop_pct = 1)
    same = PresizeTransform(sz, val.mean, val.std, interpolation=val.interpolation)
    for f in files[:4]:
        assert torch.equal(same(load_image(f, target_size=sz)), val(load_image(f, target_size=val.min_side)))
    # pre-size to ceil(sz * 1.1) then the batched zoom-1 centre crop: the validation view within resampling error
    pre, aug = PresizeTransform.from_transforms(trn), BatchedAugment.from_transforms(trn)
    assert pre.size == aug.presize == math.ceil(sz * 1.1) == trn.min_side
    x = torch.stack([pre(load_image(f, target_size=pre.min_side)) for f in files])
    out = aug.apply(x, AugParams.identity(len(files)))
    ref = val.normalize(torch.stack([val(load_image(f, target_size=val.min_side)) for f in files]))
    diff = (torch.from_numpy(aug.denorm(out)) - torch.from_numpy(val.denorm(ref))).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.35  # [0, 1] units; the noise is +-12/255 per pixel


def test_decode_presized_on_cpu_is_the_dataset_transform(photos, tmp_path):
    wide = tmp_path / "wide.jpg"
    Image.fromarray(_smooth(90, h=60).permute(1, 2, 0).numpy()).save(wide, quality=95)
    files = sorted((photos / "train").rglob("*.jpg"))[:4] + [wide]
    x = decode_presized(files, 40)
    assert x.shape == (5, 3, 40, 40) and x.dtype == torch.uint8 and x.device.type == "cpu"
    pre = PresizeTransform(40)
    assert torch.equal(x, torch.stack([pre(load_image(f, target_size=40)) for f in files]))
    sq = decode_presized(files, 40, squash=True)
    assert sq.shape == x.shape and torch.equal(sq[:4], x[:4])  # square images: squashing = cropping
    assert not torch.equal(sq[4], x[4])  # the 90 x 60 image is squashed, not cropped
    with pytest.raises(ValueError, match="decoder must be"):
        decode_presized(files, 40, decoder="nvjpeg")


def test_torchvision_decoder_path_matches_pil_and_falls_back_for_other_files(photos, tmp_path):
    # the code path nvJPEG takes on CUDA (decode_jpeg, then resize + centre square on tensors), here on the CPU
    files = sorted((photos / "train").rglob("*.jpg"))[:3]
    big = tmp_path / "big.jpg"
    _photo(1, 5, size=300).save(big, quality=92)  # PIL decodes it in draft mode (1/4 scale)
    wide = tmp_path / "wide.jpg"
    Image.fromarray(_smooth(200, h=120).permute(1, 2, 0).numpy()).save(wide, quality=95)
    grey = tmp_path / "grey.jpg"
    _photo(0, 9, size=100).convert("L").save(grey)
    png = tmp_path / "x.png"
    _photo(1, 77, size=90).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    _photo(0, 78).convert("CMYK").save(cmyk)
    files = files + [big, wide, grey, png, cmyk]
    tv, pil = decode_presized(files, 48, decoder="torchvision"), decode_presized(files, 48, decoder="pil")
    assert tv.shape == pil.shape == (8, 3, 48, 48) and tv.dtype == pil.dtype == torch.uint8
    diff = (tv.float() - pil.float()).abs()
    assert diff[:6].mean((1, 2, 3)).max() < 3  # grey levels: decoder and resampling rounding
    assert diff[-2:].max() == 0  # the PNG and the CMYK JPEG went through PIL on both paths
    assert torch.equal(decode_presized(files, 48), pil)  # 'auto' on the CPU: PIL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvJPEG decoding needs a CUDA device")
def test_decode_presized_with_nvjpeg_matches_pil(photos, tmp_path):
    files = sorted((photos / "train").rglob("*.jpg"))[:6]
    png = tmp_path / "x.png"
    _photo(1, 77, size=90).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    _photo(0, 78).convert("CMYK").save(cmyk)
    files = files + [png, cmyk]
    gpu = decode_presized(files, 48, device="cuda")  # decoder 'auto': nvJPEG
    cpu = decode_presized(files, 48, device="cpu", decoder="pil")
    assert gpu.shape == cpu.shape == (8, 3, 48, 48) and gpu.dtype == cpu.dtype == torch.uint8
    assert gpu.device.type == "cuda"
    diff = (gpu.cpu().float() - cpu.float()).abs()
    assert diff.mean() < 4 and diff[-2:].max() == 0  # PNG and CMYK went through PIL on both paths


# ----------------------------------------------------------------------------------------- the learner
def _data(photos, aug_tfms=transforms_side_on, bs=8):
    tfms = tfms_from_model(efficientnet_lite0, 64, aug_tfms=aug_tfms, max_zoom=1.1)
    return ImageClassifierData.from_paths(photos, bs=bs, tfms=tfms, num_workers=0)


def test_gpu_path_loader_yields_augmented_normalised_batches_like_the_cpu_path(photos):
    data = _data(photos)
    dl = gpu_train_loader(data)
    assert isinstance(dl.normalizer, BatchedAugment) and len(dl) == len(data.trn_dl)
    assert isinstance(dl.dataset.transform, PresizeTransform)
    torch.manual_seed(0)
    gpu = torch.cat([x for _ in range(8) for x, _ in dl])
    torch.manual_seed(0)
    cpu = torch.cat([x for _ in range(8) for x, _ in data.trn_dl])
    assert gpu.shape == cpu.shape and gpu.shape[1:] == (3, 64, 64) and gpu.dtype == cpu.dtype == torch.float32
    # statistically the same augmentation: per-channel mean and spread, and the spread between images
    for dims in ((0, 2, 3),):
        assert (gpu.mean(dims) - cpu.mean(dims)).abs().max() < 0.05
        assert ((gpu.std(dims) / cpu.std(dims)) - 1).abs().max() < 0.08
    per_img_gpu, per_img_cpu = gpu.mean((1, 2, 3)), cpu.mean((1, 2, 3))
    assert abs(per_img_gpu.std() / per_img_cpu.std() - 1) < 0.15
    # and augmentation happens: two passes over the same images differ
    torch.manual_seed(1)
    assert not torch.allclose(next(iter(dl))[0], next(iter(dl))[0])


def test_learner_trains_with_gpu_aug_on_cpu(photos, tmp_path):
    data = _data(photos)
    torch.manual_seed(0)  # the new head's initial weights
    learn = ConvLearner.pretrained(efficientnet_lite0, data, precompute=False, gpu_aug=True, engine="torch",
                                   cache_dir=tmp_path / "cache", verbose=False)
    assert learn.gpu_aug is True
    dl = learn._image_trn_dl()
    assert isinstance(dl.normalizer, BatchedAugment) and dl is learn._image_trn_dl()  # built once
    logs = learn.fit(1e-2, 3, seed=0)
    assert logs[-1]["trn_loss"] < logs[0]["trn_loss"]
    assert logs[-1]["accuracy"] >= 0.9
    # the same seed gives the same run
    torch.manual_seed(0)
    learn2 = ConvLearner.pretrained(efficientnet_lite0, data, precompute=False, gpu_aug=True, engine="torch",
                                    cache_dir=tmp_path / "cache", verbose=False)
    logs2 = learn2.fit(1e-2, 1, seed=0)
    assert logs2[0]["trn_loss"] == pytest.approx(logs[0]["trn_loss"], rel=1e-5)


def test_learner_gpu_aug_defaults_and_errors(photos, tmp_path):
    data = _data(photos)
    kw = dict(engine="torch", cache_dir=tmp_path / "cache", verbose=False)
    learn = ConvLearner.pretrained(efficientnet_lite0, data, precompute=False, **kw)
    assert learn.gpu_aug is False and learn._image_trn_dl() is data.trn_dl  # 'auto' on the CPU: CPU transforms
    with pytest.raises(ValueError, match="gpu_aug must be"):
        ConvLearner.pretrained(efficientnet_lite0, data, gpu_aug="yes", **kw)
    odd = _data(photos, aug_tfms=[RandomRotate(5), lambda im: im])
    learn = ConvLearner.pretrained(efficientnet_lite0, odd, precompute=False, gpu_aug=True, **kw)
    with pytest.raises(ValueError, match="gpu_aug=True: .*cannot run the step"):
        learn.fit(1e-2, 1)
