"""A tiny generated two-class photo-like dataset and a learner factory for fast learner tests."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visiontune import ConvLearner, ImageClassifierData, efficientnet_lite0, tfms_from_model, transforms_side_on


def _image(cls: int, i: int, size: int = 72) -> Image.Image:
    rng = np.random.default_rng(1000 * cls + i)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if cls == 0:  # horizontal stripes, warm colours
        base = np.sin(2 * np.pi * (4 + rng.uniform(-1, 1)) * yy)[..., None] * np.array([90, 40, 10])
        base = base + np.array([150, 90, 60])
    else:  # a bright disc, cool colours
        r = np.hypot(xx - rng.uniform(0.35, 0.65), yy - rng.uniform(0.35, 0.65))
        base = (r < 0.25)[..., None] * np.array([40, 90, 150]) + np.array([40, 60, 90])
    img = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(img)


def make_dataset(root: Path, n_trn: int = 12, n_val: int = 6, with_test: bool = True) -> Path:
    for split, n in (("train", n_trn), ("valid", n_val)):
        for c, name in enumerate(("discs", "stripes")[::-1]):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(c, i + (0 if split == "train" else 500)).save(d / f"{name}_{i}.jpg", quality=92)
    if with_test:
        (root / "test").mkdir(exist_ok=True)
        for i in range(4):
            _image(i % 2, 900 + i).save(root / "test" / f"t{i}.jpg")
    return root


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("actcache")


@pytest.fixture
def make_learner(tiny_path, cache_dir):
    def make(precompute=True, sz=64, bs=8, path=None, **kw):
        tfms = tfms_from_model(efficientnet_lite0, sz, aug_tfms=transforms_side_on, max_zoom=1.1)
        data = ImageClassifierData.from_paths(path or tiny_path, bs=bs, tfms=tfms, test_name="test", num_workers=0)
        kw.setdefault("engine", "torch")
        kw.setdefault("cache_dir", cache_dir)
        kw.setdefault("verbose", False)
        return ConvLearner.pretrained(efficientnet_lite0, data, precompute=precompute, **kw)

    return make
