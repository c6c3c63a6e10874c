"""Issue 14 "decoding two ways": a path and the same image opened with PIL give identical outputs.

``ExportedModel.predict_images([path])`` used to decode big JPEGs in draft mode (libjpeg's 1/2..1/8
scaling) while ``([PIL image])`` was used at full size: 0.531 against 0.511 for the same file. Both now go
through ``imaging.decode.open_image`` at full size.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn

from visiontune.infer.export import export_model
from visiontune.infer.exported import ExportedModel

PRE = {"input_size": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bilinear", "crop_pct": 0.875}


def _model() -> nn.Module:
    torch.manual_seed(0)  # a fine-grained first layer, so that draft-mode pixels would change the outputs
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3), nn.LogSoftmax(1)).eval()


def _photo(path, size=(480, 360), orientation=None):
    """A detailed JPEG far larger than the model's 36 px resize (draft mode would decode it at 1/8)."""
    rng = np.random.default_rng(3)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(xx * 7) % 256, (yy * 5) % 256, (xx * yy) % 256], -1).astype(np.int64)
    arr = np.clip(arr + rng.integers(-40, 40, arr.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    if orientation is None:
        im.save(path, quality=92)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(path, quality=92, exif=exif)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    export_model(_model(), d, preprocessing=PRE, classes=["a", "b", "c"])
    return ExportedModel.load(d / "model.json")


@pytest.mark.parametrize("orientation", [None, 6])
@pytest.mark.parametrize("tta", [False, True])
def test_path_and_pil_image_give_identical_outputs(model, tmp_path, orientation, tta):
    p = _photo(tmp_path / "photo.jpg", orientation=orientation)
    by_path = model.predict_images([p], tta=tta)
    lazy = Image.open(p)  # not decoded yet
    loaded = Image.open(p)
    loaded.load()
    converted = Image.open(p).convert("RGB")  # decoded, EXIF kept in .info
    for im in (lazy, loaded, converted):
        np.testing.assert_allclose(model.predict_images([im], tta=tta), by_path, atol=1e-6, rtol=0)
    upright = ImageOps.exif_transpose(Image.open(p))  # the caller applied EXIF already: not applied twice
    np.testing.assert_allclose(model.predict_images([upright], tta=tta), by_path, atol=1e-6, rtol=0)
    assert np.isfinite(by_path).all()


def test_full_size_decode_differs_from_draft(model, tmp_path):
    """The guard above can fail: draft-mode decoding of the same file gives other numbers."""
    from visiontune.imaging.decode import open_image

    p = _photo(tmp_path / "photo.jpg")
    full, drafted = open_image(p), open_image(p, draft=model.resize_size)
    assert full.size == (480, 360) and drafted.size == (60, 45)
    assert np.abs(model.predict_images([full]) - model.predict_images([drafted])).max() > 1e-4


def test_pil_image_is_not_modified(model, tmp_path):
    p = _photo(tmp_path / "photo.jpg", orientation=6)
    im = Image.open(p).convert("L")
    before = (im.mode, im.size, im.tobytes())
    model.predict_images([im])
    assert (im.mode, im.size, im.tobytes()) == before


def test_validation_dataset_decodes_like_predict(tmp_path):
    """The run's recorded validation numbers use the same decode: no draft mode for deterministic views."""
    from visiontune.data.datasets import FilesDataset
    from visiontune.imaging.decode import open_image
    from visiontune.transforms import tfms_from_stats

    p = _photo(tmp_path / "photo.jpg")
    trn, val = tfms_from_stats((PRE["mean"], PRE["std"]), 32)
    ds = FilesDataset(tmp_path, ["photo.jpg"], [0], val)
    assert ds.get_x(0).tobytes() == open_image(p).tobytes()
    assert FilesDataset(tmp_path, ["photo.jpg"], [0], trn).get_x(0).size < (480, 360)  # training may draft


def test_predict_images_refuses_eps_and_special_files(model, tmp_path, monkeypatch):
    """Issue 17.3/17.5 through the Python API: an EPS named .jpg (path or PIL image) and a FIFO give NaN
    rows with their reasons; Pillow's EPS plugin never runs and nothing blocks."""
    import os
    import signal

    from PIL import EpsImagePlugin

    from visiontune.infer.exported import UnreadableImageWarning

    eps = tmp_path / "drawing.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n%%EOF\n")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = _photo(tmp_path / "good.jpg", size=(64, 48))
    eps_pil = Image.open(eps, formats=["EPS"])  # what a caller might hand in
    ran = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", lambda self, *a, **k: ran.append("load"))
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("blocked on a special file")))
    signal.alarm(30)
    try:
        with pytest.warns(UnreadableImageWarning):
            out = model.predict_images([eps, fifo, good, eps_pil])
    finally:
        signal.alarm(0)
    assert np.isnan(out[[0, 1, 3]]).all() and np.isfinite(out[2]).all()
    reasons = dict(model.unreadable)
    assert reasons[str(eps)].startswith("not an image: the file is a PostScript/EPS document")
    assert reasons[str(fifo)] == "not a regular file: a named pipe (FIFO); only regular files are read"
    assert ran == []


def test_standalone_snippet_in_the_docs_gives_the_same_numbers(model, tmp_path):
    """The onnxruntime-only snippet in ``infer/exported.py``'s docstring differed by up to 0.02 from
    ``predict_images`` (draft mode on paths); with one full-size decode they agree."""
    import textwrap

    from visiontune.infer import exported

    doc = exported.__doc__
    code = textwrap.dedent(doc.split("Pillow::\n", 1)[1].split("\n(``kind", 1)[0])
    ns: dict = {}
    exec(compile(code, "snippet", "exec"), ns)  # noqa: S102 - the docs' own snippet, run as a user would
    paths = [_photo(tmp_path / "a.jpg"), _photo(tmp_path / "b.jpg", size=(300, 500), orientation=3)]
    rows = ns["run"](model.path.with_suffix(".json"), paths)
    got = np.array([[r[c] for c in model.classes] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(got, model.predict_images(paths), atol=1e-6, rtol=0)
