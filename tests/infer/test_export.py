"""Export to ONNX / TorchScript and run the export with ExportedModel, against the torch module."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visiontune.infer import exported as exported_mod
from visiontune.infer.export import export_model
from visiontune.infer.exported import TTA_VIEWS, ExportedModel

CLASSES = ["cat", "dog", "fox"]
PRE = {"input_size": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bilinear", "crop_pct": 0.875}
JSON_FIELDS = {"format", "file", "input_size", "mean", "std", "interpolation", "crop_pct", "classes", "kind",
               "visiontune_version", "input_name", "output_name"}


def tiny_model(n_out: int = 3, final: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
              nn.Linear(8, n_out)]
    if final is not None:
        layers.append(final)
    m = nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial BN statistics, so train vs eval mode would differ
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(48, 40), (40, 64), (37, 37), (90, 50), (32, 32)]):
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
        arr = np.clip(arr.astype(int) + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
        p = d / f"img{i}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    return paths


def reference_batch(paths, pre=PRE) -> torch.Tensor:
    """torchvision's standard validation transform: the preprocessing ExportedModel must reproduce."""
    from torchvision import transforms as T

    size = pre["input_size"]
    tf = T.Compose([
        T.Resize(int(size / pre["crop_pct"]), interpolation=T.InterpolationMode(pre["interpolation"])),
        T.CenterCrop(size), T.ToTensor(), T.Normalize(pre["mean"], pre["std"]),
    ])
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(tf(im.convert("RGB")))
    return torch.stack(out)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_single_label_matches_torch(tmp_path, images, fmt):
    model = tiny_model(final=nn.LogSoftmax(dim=1)).eval()
    path = export_model(model, tmp_path, preprocessing=PRE, classes=CLASSES, fmt=fmt)
    assert path.suffix == {"onnx": ".onnx", "torchscript": ".pt"}[fmt]
    m = ExportedModel.load(tmp_path / "model.json")
    assert m.classes == CLASSES and m.kind == "single" and m.fmt == fmt

    x = reference_batch(images)
    with torch.no_grad():
        want = model(x).exp().numpy()
    got = m.predict_images(images, batch_size=2)  # several batches, last one partial
    assert got.shape == (len(images), 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    # preprocessing equals torchvision's within one grey level (the learner's validation transform: one resize
    # of the centre crop's source box, imaging.views), and the batch axis is dynamic
    np.testing.assert_allclose(m.preprocess(images), x.numpy(), atol=1.01 / 255 / min(PRE["std"]), rtol=0)
    np.testing.assert_allclose(m.predict_batch(x.numpy()), want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(m.predict_batch(x[:1].numpy()), want[:1], atol=1e-4, rtol=0)
    # PIL images work as well as paths
    pil = [Image.open(p) for p in images[:2]]
    np.testing.assert_allclose(m.predict_images(pil), want[:2], atol=1e-4, rtol=0)


def test_json_sidecar(tmp_path):
    export_model(tiny_model(final=nn.LogSoftmax(1)), tmp_path, preprocessing={**PRE, "extra": 1},
                 classes=CLASSES, name="clf")
    meta = json.loads((tmp_path / "clf.json").read_text())
    assert set(meta) == JSON_FIELDS
    assert meta["format"] == "onnx" and meta["file"] == "clf.onnx" and (tmp_path / "clf.onnx").is_file()
    assert meta["input_size"] == 32 and meta["mean"] == PRE["mean"] and meta["std"] == PRE["std"]
    assert meta["interpolation"] == "bilinear" and meta["crop_pct"] == 0.875
    assert meta["classes"] == CLASSES and meta["kind"] == "single"
    import onnx

    g = onnx.load(str(tmp_path / "clf.onnx"))
    assert g.opset_import[0].version >= 17
    assert [i.name for i in g.graph.input] == [meta["input_name"]]
    assert [o.name for o in g.graph.output] == [meta["output_name"]]
    dims = g.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_multi_label_output_unchanged(tmp_path, images, fmt):
    model = tiny_model(final=nn.Sigmoid()).eval()
    export_model(model, tmp_path, preprocessing=PRE, classes=CLASSES, kind="multi", fmt=fmt)
    m = ExportedModel.load(tmp_path / "model.json")
    assert m.kind == "multi"
    with torch.no_grad():
        want = model(reference_batch(images)).numpy()
    got = m.predict_images(images)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert not np.allclose(got.sum(1), 1.0)  # independent sigmoids, not a softmax


def test_regression_raw_values(tmp_path, images):
    model = tiny_model(n_out=1).eval()
    export_model(model, tmp_path, preprocessing=PRE, classes=["value"], kind="reg")
    m = ExportedModel.load(tmp_path / "model.onnx")  # loading by the model file finds the JSON beside it
    with torch.no_grad():
        want = model(reference_batch(images)).numpy()
    np.testing.assert_allclose(m.predict_images(images), want, atol=1e-4, rtol=0)


def test_caller_module_untouched(tmp_path):
    model = tiny_model(final=nn.LogSoftmax(1))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, tmp_path, preprocessing=PRE, classes=CLASSES)
    export_model(model, tmp_path, preprocessing=PRE, classes=CLASSES, fmt="torchscript")
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # and the export used eval mode (running statistics), not batch statistics
    m = ExportedModel.load(tmp_path)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        want = model.eval()(x).exp().numpy()
    np.testing.assert_allclose(m.predict_batch(x.numpy()), want, atol=1e-4, rtol=0)


def test_tta_is_deterministic_average_of_views(tmp_path, images):
    export_model(tiny_model(final=nn.LogSoftmax(1)), tmp_path, preprocessing=PRE, classes=CLASSES)
    m = ExportedModel.load(tmp_path / "model.json")
    a = m.predict_images(images, tta=True, batch_size=7)
    b = m.predict_images(images, tta=True, batch_size=64)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    views = m.views(images[0], tta=True)
    assert len(views) == len(TTA_VIEWS) == 5
    np.testing.assert_allclose(views[0], m.preprocess(images[:1])[0])  # view 0 is the plain centre crop
    np.testing.assert_allclose(views[1], views[0][:, :, ::-1])  # view 1 is its mirror image
    np.testing.assert_allclose(a[0], m.predict_batch(np.stack(views)).mean(0), atol=1e-6)
    assert not np.allclose(a, m.predict_images(images))


def test_timm_backbone_exports(tmp_path, images):
    timm = pytest.importorskip("timm")
    body = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=2)
    model = nn.Sequential(body, nn.LogSoftmax(1)).eval()
    pre = {**PRE, "input_size": 64}
    export_model(model, tmp_path, preprocessing=pre, classes=["a", "b"])
    m = ExportedModel.load(tmp_path / "model.json")
    with torch.no_grad():
        want = model(reference_batch(images, pre)).exp().numpy()
    np.testing.assert_allclose(m.predict_images(images), want, atol=1e-4, rtol=0)


def test_standalone_snippet_in_docstring(tmp_path, images):
    """The docstring's onnxruntime + numpy + PIL snippet runs and agrees with ExportedModel."""
    export_model(tiny_model(final=nn.LogSoftmax(1)), tmp_path, preprocessing=PRE, classes=CLASSES)
    doc = exported_mod.__doc__
    block = doc.split("numpy and Pillow::\n", 1)[1].split("\n(", 1)[0]
    ns: dict = {}
    exec(compile(textwrap.dedent(block), "snippet", "exec"), ns)
    rows = ns["run"](tmp_path / "model.json", images)
    got = np.array([[r[c] for c in CLASSES] for r in rows])
    want = ExportedModel.load(tmp_path / "model.json").predict_images(images)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_predict_on_an_onnx_export_runs_without_torch(tmp_path, images):
    """`visiontune --help` and `visiontune predict` on an ONNX export never import torch (seconds saved
    at every start), and print ExportedModel's probabilities."""
    import subprocess
    import sys

    export_model(tiny_model(final=nn.LogSoftmax(1)), tmp_path, preprocessing=PRE, classes=CLASSES)
    out = tmp_path / "preds.json"
    predict = (f"rc = main(['predict', {str(tmp_path / 'model.json')!r}, {str(images[0].parent)!r}, "
               f"'--top-k', '3', '--format', 'json', '--out', {str(out)!r}])")
    for step in ("build_parser().format_help(); rc = 0", predict):
        code = f"import sys\nfrom visiontune.cli import build_parser, main\n{step}\nprint(rc, 'torch' in sys.modules)"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.stdout.split()[-2:] == ["0", "False"], proc.stdout + proc.stderr

    rows = {Path(r["file"]).name: r["top"] for r in json.loads(out.read_text())}
    want = ExportedModel.load(tmp_path / "model.json").predict_images(images)
    assert sorted(rows) == sorted(p.name for p in images)
    for path, probs in zip(images, want):
        got = {t["label"]: t["prob"] for t in rows[path.name]}
        np.testing.assert_allclose([got[c] for c in CLASSES], probs, atol=1e-5)


def test_bad_arguments_fail_loudly(tmp_path):
    m = tiny_model(final=nn.LogSoftmax(1))
    with pytest.raises(ValueError, match="Only single, multi, reg"):
        export_model(m, tmp_path, preprocessing=PRE, classes=CLASSES, kind="binary")
    with pytest.raises(ValueError, match="Only onnx, torchscript"):
        export_model(m, tmp_path, preprocessing=PRE, classes=CLASSES, fmt="tflite")
    with pytest.raises(ValueError, match="crop_pct"):
        export_model(m, tmp_path, preprocessing={"input_size": 32, "mean": [0] * 3, "std": [1] * 3,
                                                  "interpolation": "bilinear"}, classes=CLASSES)
    with pytest.raises(FileNotFoundError):
        ExportedModel.load(tmp_path / "nothing.json")
    assert not list(tmp_path.iterdir())  # nothing half-written
