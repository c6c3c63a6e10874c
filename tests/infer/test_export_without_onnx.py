"""Where ``onnx`` has been removed, an ONNX export becomes TorchScript with one warning; the ONNX engines step aside.

``sys.modules[name] = None`` makes ``import name`` fail (and ``find_spec`` find nothing) as if it were
not installed.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visiontune.features import factory as engine_mod
from visiontune.infer.export import export_model
from visiontune.infer.exported import ExportedModel

PRE = {"input_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
WARNING = ("visiontune: onnx is not installed, so the model is exported as TorchScript (model.pt) instead of "
           "ONNX; `pip install onnx onnxruntime` for ONNX")


@pytest.fixture
def without_onnx(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
                         nn.LogSoftmax(1)).eval()


def test_onnx_export_writes_torchscript_with_one_warning(tmp_path, without_onnx, caplog):
    model = tiny_model()
    with caplog.at_level(logging.WARNING, logger="visiontune.infer.export"):
        path = export_model(model, tmp_path, preprocessing=PRE, classes=["a", "b"], fmt="onnx")
    assert path == tmp_path / "model.pt"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", WARNING)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]
    meta = json.loads((tmp_path / "model.json").read_text())
    assert (meta["format"], meta["file"]) == ("torchscript", "model.pt")

    image = tmp_path / "img.png"
    pixels = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    Image.fromarray(pixels).save(image)
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        want = model(x).exp().numpy()
    got = ExportedModel.load(tmp_path / "model.json").predict_images([image])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_torchscript_asked_for_gives_no_warning(tmp_path, without_onnx, caplog):
    with caplog.at_level(logging.WARNING, logger="visiontune.infer.export"):
        path = export_model(tiny_model(), tmp_path, preprocessing=PRE, classes=["a", "b"], fmt="torchscript")
    assert (path.name, caplog.records) == ("model.pt", [])


def test_onnx_engines_are_unavailable_and_auto_picks_torch_silently(without_onnx):
    cpu = torch.device("cpu")
    for kind in ("openvino", "onnxruntime"):
        assert engine_mod._unavailable_reason(kind, cpu) == "onnx is not installed (pip install onnx)"
    assert not {"openvino", "onnxruntime"} & set(engine_mod.available_engines())
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng = engine_mod.create_engine(net, "auto", example_input_shape=(1, 3, 16, 16))
    try:
        assert eng.kind.startswith("torch") and caught == []
    finally:
        eng.close()
