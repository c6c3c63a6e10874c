"""The packaged offline weights are real ImageNet weights with [-1, 1] input scaling.

Zero-shot ImageNet "ant" (310) vs "bee" (309) on hymenoptera/val: the DEVELOPERS facts are 0.974
(lite0), 0.980 (lite1), 0.993 (lite2) with mean = std = 0.5, and ImageNet's mean/std does worse.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from visiontune.models import create_imagenet_model, get_arch

VAL = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "hymenoptera" / "val"
ANT, BEE = 310, 309


def _batch(files, size, mean, std, crop_pct):
    xs = []
    for f in files:
        im = ImageOps.exif_transpose(Image.open(f)).convert("RGB")
        scale = int(round(size / crop_pct))
        w, h = im.size
        r = scale / min(w, h)
        im = im.resize((max(scale, round(w * r)), max(scale, round(h * r))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        a = (np.asarray(im, dtype=np.float32) / 255 - mean) / std
        xs.append(a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(xs))


def zero_shot_accuracy(name, mean=None, std=None, limit=None):
    arch = get_arch(name)
    pp = arch.preprocessing
    mean = np.array(mean if mean is not None else pp.mean, np.float32)
    std = np.array(std if std is not None else pp.std, np.float32)
    model, source = create_imagenet_model(arch)
    assert source.startswith("package:")
    model.eval()
    files = [(f, 0) for f in sorted((VAL / "ants").iterdir())] + [(f, 1) for f in sorted((VAL / "bees").iterdir())]
    if limit:
        files = files[::max(1, len(files) // limit)]
    correct = 0
    with torch.no_grad():
        for i in range(0, len(files), 32):
            chunk = files[i:i + 32]
            logits = model(_batch([f for f, _ in chunk], pp.input_size, mean, std, pp.crop_pct)).float()
            pred = (logits[:, BEE] > logits[:, ANT]).long().numpy()
            correct += int((pred == np.array([y for _, y in chunk])).sum())
    return correct / len(files)


@pytest.mark.parametrize("name,floor", [("efficientnet_lite0", 0.95), ("efficientnet_lite1", 0.95), ("efficientnet_lite2", 0.96)])
def test_packaged_weights_zero_shot(name, floor):
    assert zero_shot_accuracy(name) >= floor


def test_inception_scaling_beats_imagenet_stats_for_lite0():
    ours = zero_shot_accuracy("efficientnet_lite0")
    imagenet = zero_shot_accuracy("efficientnet_lite0", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert ours > imagenet
