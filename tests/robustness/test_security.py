"""Security: nothing visiontune reads is unpickled; crafted pickles fail safely; exports hold no code.

Every crafted file below would create a marker file if it were unpickled; each test checks the
marker never appears, and that the error says what is wrong with the file.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

PKG = Path(__file__).resolve().parents[2] / "visiontune"


class _Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path):
    """(marker path, {name: crafted file}) - raw pickles and torch.save zips with a payload."""
    marker = tmp_path / "PWNED"
    files = {}
    raw = pickle.dumps(_Evil(marker))
    for name in ("weights.pth", "weights.pt", "weights.bin", "weights.safetensors", "checkpoint.pt"):
        files[name] = tmp_path / name
        files[name].write_bytes(raw)
    files["torchsave.pth"] = tmp_path / "torchsave.pth"
    torch.save({"model": {"w": _Evil(marker)}}, files["torchsave.pth"])  # a real torch zip, payload inside
    files["state_dict_with_payload.pt"] = tmp_path / "state_dict_with_payload.pt"
    torch.save({"conv.weight": torch.zeros(1), "x": _Evil(marker)}, files["state_dict_with_payload.pt"])
    yield marker, files
    assert not marker.exists(), "a crafted pickle was executed"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_crafted_weights_file_is_refused(evil):
    from visiontune.models.backbone import WeightsNotAvailable, create_body

    marker, files = evil
    for name, path in files.items():
        with pytest.raises(WeightsNotAvailable) as ei:
            create_body("efficientnet_lite0", weights=path)
        msg = str(ei.value)
        assert msg.startswith(f"refused to load {path}: it is not a ")
        if path.suffix == ".safetensors":
            assert "not a valid safetensors file" in msg
        else:
            assert "visiontune never unpickles arbitrary objects" in msg
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_crafted_weights_through_conv_learner(evil, tmp_path):
    from vt_zoo import make_class_images

    from visiontune import ConvLearner, ImageClassifierData, tfms_from_model
    from visiontune.models.backbone import WeightsNotAvailable

    marker, files = evil
    root = tmp_path / "ds"
    for split in ("train", "valid"):
        for c, col in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
            make_class_images(root / split / c, col, 2)
    data = ImageClassifierData.from_paths(root, tfms=tfms_from_model("efficientnet_lite0", 32), num_workers=0)
    with pytest.raises(WeightsNotAvailable, match="never unpickles"):
        ConvLearner.pretrained("efficientnet_lite0", data, weights=files["torchsave.pth"], cache_dir=tmp_path / "c")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_crafted_checkpoint_is_refused(evil):
    from visiontune.train.checkpoint import load_checkpoint

    marker, files = evil
    for name, path in files.items():
        with pytest.raises(ValueError, match=r"is not a visiontune checkpoint that can be loaded safely "
                                             r"\(\w+\); it was not unpickled"):
            load_checkpoint(path)


@pytest.mark.parametrize("fmt,fname", [("onnx", "model.onnx"), ("torchscript", "model.pt")])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_run_folder_whose_model_is_a_pickle_fails_safely(evil, tmp_path, fmt, fname):
    from visiontune.infer.exported import ExportedModel

    marker, files = evil
    for src in ("weights.pth", "torchsave.pth"):
        run = tmp_path / f"run-{fmt}-{src}"
        run.mkdir()
        (run / fname).write_bytes(files[src].read_bytes())
        (run / "model.json").write_text(json.dumps({
            "format": fmt, "file": fname, "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
            "interpolation": "bilinear", "crop_pct": 1.0, "classes": ["a", "b"], "kind": "single"}))
        what = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[fmt]
        with pytest.raises(ValueError, match=rf"cannot load .*{fname} as {what} model: the file is corrupt or not "
                                             rf"{what} export .*It was not unpickled"):
            ExportedModel.load(run)


def test_run_folder_best_weights_pickle_is_not_unpickled(evil, tmp_path):
    """``best.safetensors`` holding a pickle: safetensors never unpickles, it fails on the header."""
    from safetensors.torch import load_file

    marker, files = evil
    with pytest.raises(Exception, match="header"):
        load_file(str(files["weights.safetensors"]))


@pytest.mark.parametrize("bad", ["../outside.onnx", "/tmp/outside.onnx", "sub/model.onnx", ".."])
def test_sidecar_cannot_point_the_model_file_outside_its_folder(tmp_path, bad):
    from visiontune.infer.exported import ExportedModel

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "outside.onnx").write_bytes(b"x")
    (run / "model.json").write_text(json.dumps({
        "format": "onnx", "file": bad, "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
        "interpolation": "bilinear", "crop_pct": 1.0, "classes": ["a", "b"], "kind": "single"}))
    with pytest.raises((ValueError, FileNotFoundError), match=r"Invalid name|does not exist"):
        ExportedModel.load(run)


# ---- static checks ------------------------------------------------------------------------------
def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = ast.unparse(f)
            yield name, node


def _kw(node: ast.Call, key: str):
    for k in node.keywords:
        if k.arg == key:
            return ast.unparse(k.value)
    return None


def test_no_code_path_unpickles_untrusted_data():
    """Every loader call in the package is a safe one: ``torch.load(weights_only=True)``,
    ``np.load(allow_pickle=False)``, safetensors; no pickle/dill/joblib/shelve/yaml.load/eval/exec."""
    findings = []
    for py in sorted(PKG.rglob("*.py")):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        rel = py.relative_to(PKG.parent).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    if m.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"):
                        findings.append(f"{rel}:{node.lineno}: imports {m}")
        for name, node in _calls(tree):
            where = f"{rel}:{node.lineno}: {name}"
            if name.endswith("torch.load"):
                if _kw(node, "weights_only") != "True":
                    findings.append(where + " without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                if _kw(node, "allow_pickle") != "False":
                    findings.append(where + " without allow_pickle=False")
            elif name in ("eval", "exec", "yaml.load", "yaml.unsafe_load", "pickle.load", "pickle.loads",
                          "torch.serialization.load", "np.fromfile"):
                findings.append(where)
            elif name.endswith("jit.load"):
                # TorchScript archives hold TorchScript code (run by torch's interpreter, not pickled Python);
                # only ExportedModel loads them, for files the user exported. Documented in reliability.md.
                if rel != "visiontune/infer/exported.py":
                    findings.append(where)
    assert findings == []


def test_pil_decompression_bomb_guard_stays_on():
    from PIL import Image, ImageFile

    import visiontune  # noqa: F401  (importing must not switch PIL's guards off)

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 200_000_000
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_onnx_export_and_sidecar_hold_no_executable_content(tmp_path):
    import onnx

    from visiontune.infer.export import export_model

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2), nn.LogSoftmax(1))
    pre = {"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    path = export_model(net, tmp_path, preprocessing=pre, classes=["a", "b"], fmt="onnx")
    model = onnx.load(str(path), load_external_data=False)
    assert {op.domain for op in model.opset_import} <= {"", "ai.onnx"}  # standard operators only
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    assert not model.functions  # no custom functions
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert [p.name for p in tmp_path.iterdir()] and sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.onnx"]
    meta = json.loads((tmp_path / "model.json").read_text())

    def plain(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return isinstance(v, (str, int, float, bool)) or v is None

    assert plain(meta)
    assert set(meta) == {"format", "file", "input_size", "mean", "std", "interpolation", "crop_pct", "classes", "kind",
                         "visiontune_version", "input_name", "output_name"}
    assert "/" not in meta["file"] and ".." not in meta["file"]  # the model file is beside the JSON


# ---------------------------------------------------------------------------------------------
# issue 17.3: non-raster files never reach a Pillow plugin (Ghostscript); the report reads images only
# from inside the run's data folder
# ---------------------------------------------------------------------------------------------
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
       b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")


def _report_fixtures():
    """tests/report/conftest.py (the synthetic run folder), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vt_report_fixtures", PKG.parent / "tests/report/conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def eps_spy(monkeypatch):
    """Record every time Pillow's EPS plugin (which runs Ghostscript to decode) or a subprocess starts."""
    import subprocess

    from PIL import EpsImagePlugin

    ran = []
    real_open = EpsImagePlugin.EpsImageFile._open

    def spy_open(self):
        ran.append("EpsImageFile._open")
        return real_open(self)

    def no_process(*a, **k):
        ran.append(f"subprocess {a[0] if a else k}")
        raise OSError("no subprocess in this test")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy_open)
    for name in ("Popen", "check_call", "run", "call"):
        monkeypatch.setattr(subprocess, name, no_process)
    return ran


def test_report_never_hands_an_eps_to_pillow(tmp_path, eps_spy):
    make_run_folder = _report_fixtures().make_run_folder

    from visiontune.run.reporting import write_report

    run = make_run_folder(tmp_path)
    (run / "aug_previews.png").write_bytes(EPS)
    for p in (tmp_path / "data").rglob("img0.jpg"):  # a thumbnail the top losses would show
        p.write_bytes(EPS)
    text = write_report(run).read_text()
    assert eps_spy == []
    assert ("Not available: aug_previews.png cannot be shown: not an image: the file is a PostScript/EPS document"
            in text)


def test_report_thumbnails_stay_inside_the_data_folder(tmp_path, eps_spy, monkeypatch):
    import csv

    make_run_folder = _report_fixtures().make_run_folder
    from PIL import Image

    from visiontune.run.reporting import write_report

    run = make_run_folder(tmp_path)
    secret = tmp_path / "private" / "photo.jpg"
    secret.parent.mkdir()
    Image.new("RGB", (60, 60), (255, 0, 0)).save(secret)
    data = tmp_path / "data"
    os.symlink(secret, data / "valid" / "link.jpg")
    (tmp_path / "data" / "valid" / "eps.jpg").write_bytes(EPS)
    crafted = [str(secret), "../private/photo.jpg", "valid/../../private/photo.jpg", "valid/link.jpg",
               "valid/eps.jpg"]
    with open(run / "val_predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fname", "target", "pred", "p_ants", "p_bees", "p_wasps"])
        for name in crafted:
            w.writerow([name, "ants", "bees", "0.1", "0.8", "0.1"])
    opened = []
    real = os.open

    def spy(path, *a, **k):
        opened.append(os.path.realpath(path))
        return real(path, *a, **k)

    from visiontune.imaging import decode

    monkeypatch.setattr(decode.os, "open", spy)
    text = write_report(run).read_text()
    monkeypatch.undo()
    assert str(secret) not in opened
    assert "5 of 5 images not found" in text and "<figcaption" not in text.split("<h2>Top losses</h2>")[1]
    assert eps_spy == []


def test_python_api_refuses_an_eps_pil_image(tmp_path, eps_spy):
    from PIL import Image

    from visiontune.imaging.decode import open_image
    from visiontune.imaging.limits import ImageLoadError

    p = tmp_path / "drawing.eps"
    p.write_bytes(EPS)
    im = Image.open(p)  # Pillow's own open (the caller's): the plugin reads the header, nothing runs yet
    eps_spy.clear()
    with pytest.raises(ImageLoadError, match="not an image: the PIL image is in EPS format, not a raster image"):
        open_image(im)
    with pytest.raises(ImageLoadError, match="PostScript/EPS document"):
        open_image(p)
    assert eps_spy == []
