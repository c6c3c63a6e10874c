"""Forward engines: one object that runs a frozen body as fast as the machine allows.

Precompute, ``predict`` and TTA all push batches through an :class:`Engine`::

    engine = create_engine(body, n_images=len(ds))   # 'auto': the best engine installed here
    feats = run_engine(engine, dl, timings=t)        # (N, *output shape) float32 numpy
    engine.close()

Kinds, in the order ``'auto'`` prefers them on a CPU:

==================  ======================================================================  ==========
kind                what it runs                                                            precision
==================  ======================================================================  ==========
``openvino``        ONNX export, compiled by OpenVINO for the CPU (bf16 hint where the       bf16 / fp32
                    CPU has bf16, else f32); extra ``visiontune[cpu-fast]``
``onnxruntime``     ONNX export, ONNX Runtime CPU session (a dependency of visiontune)      fp32
``torch-compile``   ``torch.compile`` of a channels_last copy (bf16 autocast where the CPU  bf16 / fp32
                    has bf16); chosen by ``'auto'`` only for ``n_images >=
                    COMPILE_MIN_IMAGES``, where its compile time pays off
``torch-bf16``      channels_last copy + ``torch.autocast('cpu', bfloat16)``; only where    bf16
                    the CPU has bf16 instructions
``torch-cl``        channels_last copy in fp32 (the fallback where the CPU lacks bf16)       fp32
``torch``           plain eager fp32 on the module itself: the reference                    fp32
==================  ======================================================================  ==========

On a CUDA device ``'auto'`` picks ``cuda``: a channels_last copy on the GPU with autocast
(bf16 where supported, else fp16).

Precision, checked by ``tests/features/test_engine.py`` against eager fp32 PyTorch on the
pooled features of efficientnet_lite0 with its real weights:

* fp32 engines: ``max |out - ref| <= 1e-3 * max |ref|`` (measured: ~2e-6);
* bf16 / fp16 engines: cosine similarity ``>= 0.999`` on average over the images and
  ``>= 0.995`` for every image, and ``max |out - ref| <= 6e-2 * max |ref|``. Measured for
  bf16 autocast on textured inputs: mean cosine 0.9995, max error 2.5-4% of the feature
  scale; on hymenoptera photos at 224 px: median cosine 0.9994, worst image 0.9990. (Very
  smooth, featureless images give smaller activations and larger relative errors.)

``engine.precision`` says which of the two applies.

Engines never change the module they are given: the fast kinds run a copy (or an ONNX
export) and re-sync it whenever the module's weights change (detected from each tensor's
storage pointer and in-place version counter, so optimizer steps and ``load_state_dict``
are seen; writes through ``tensor.data`` are not: call ``engine.refresh()`` after those).
The module's train/eval flags are restored after every call; the engine always runs it in
eval mode. Exports are cached in memory per module, weights version, input shape and
thread count, so building the same engine twice exports once. Given ``cache_id`` (a digest of
the module's architecture and weights, as the learner passes), the ONNX export is also kept on
disk under ``$VISIONTUNE_CACHE/engines`` (written atomically; a file that fails to load is
exported again), so a later process with the same backbone skips the export (~0.7 s for
efficientnet_lite0 on 2 CPU cores).

Choose an engine with ``kind=``, or for a whole process with the environment variable
``VISIONTUNE_ENGINE`` (read when ``kind='auto'``). An engine that cannot be built (not
installed, unsupported, export error) is replaced by the next one in the order above, with
a one-line warning; ``strict=True`` raises instead.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
>>> engine = create_engine(net, "torch", example_input_shape=(1, 3, 16, 16))
>>> engine(torch.zeros(2, 3, 16, 16)).shape
torch.Size([2, 4])
>>> engine.kind, engine.precision
('torch', 'fp32')
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import itertools
import os
import shutil
import time
import warnings
import weakref
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..utils.errors import first_line

__all__ = [
    "COMPILE_MIN_IMAGES",
    "ENGINE_KINDS",
    "Engine",
    "available_engines",
    "clear_engine_cache",
    "create_engine",
    "cpu_supports_bf16",
    "measure_engines",
    "reading_ahead",
    "run_engine",
]

ENGINE_KINDS: tuple[str, ...] = ("cuda", "openvino", "onnxruntime", "torch-compile", "torch-bf16", "torch-cl", "torch")
"""Every engine kind, best first (``'auto'`` walks this order, skipping what is unavailable)."""

COMPILE_MIN_IMAGES = 20_000
"""``'auto'`` considers ``torch-compile`` only for at least this many images: its ~20-45 s
compile pays for itself only over a long run (and ONNX Runtime / OpenVINO, when installed,
are as fast without the wait)."""

ENV_VAR = "VISIONTUNE_ENGINE"
_CPU_KINDS = ENGINE_KINDS[1:]
_FP32_TOL = 1e-3  # documented above; the tests import these
_LOWP_TOL = 6e-2
_LOWP_MEAN_COSINE = 0.999
_LOWP_MIN_COSINE = 0.995
_ONNX_OPSET = 17
EXPORT_CACHE_KEEP = 8  # ONNX exports kept on disk (the most recently used)


# ----------------------------------------------------------------------------- capabilities
@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matrix work natively (AVX-512 BF16 or AMX), so bf16 is a speed-up.

    Without it oneDNN emulates bf16, which is several times *slower* than fp32.
    """
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True
    except Exception:  # noqa: BLE001 - private op; absent on some builds
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _installed(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def _compile_supported() -> bool:
    if not hasattr(torch, "compile"):
        return False
    try:
        dynamo = importlib.import_module("torch._dynamo")
        if not dynamo.is_dynamo_supported():
            return False
    except Exception:  # noqa: BLE001
        return False
    # Inductor needs a C++ compiler for CPU kernels.
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def _unavailable_reason(kind: str, device: torch.device) -> str | None:
    """Why ``kind`` cannot run here, or None when it can."""
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device"
        return None
    if kind in ("openvino", "onnxruntime") and not _installed("onnx"):  # both run an ONNX export
        return "onnx is not installed (pip install onnx)"
    if kind == "openvino":
        return None if _installed("openvino") else "openvino is not installed (pip install 'visiontune[cpu-fast]')"
    if kind == "onnxruntime":
        return None if _installed("onnxruntime") else "onnxruntime is not installed (pip install onnxruntime)"
    if kind == "torch-compile":
        return None if _compile_supported() else "torch.compile is not supported here (needs dynamo and a C++ compiler)"
    if kind == "torch-bf16":
        return None if cpu_supports_bf16() else "this CPU has no native bf16 (AVX-512 BF16 / AMX)"
    return None


def available_engines(device: str | torch.device | None = None) -> list[str]:
    """The engine kinds that can run here, best first. ``'cuda'`` is listed only when a GPU is present."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return [k for k in ENGINE_KINDS if _unavailable_reason(k, dev) is None]


def _check_kind(kind: str, source: str = "kind") -> str:
    kind = kind.strip().lower()
    if kind != "auto" and kind not in ENGINE_KINDS:
        raise ValueError(
            f"unknown engine {kind!r} (from {source}); valid kinds are 'auto', "
            + ", ".join(repr(k) for k in ENGINE_KINDS)
        )
    return kind


# ----------------------------------------------------------------------------- module helpers
@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Run ``module`` in eval mode, restoring every submodule's own flag afterwards."""
    training = [(m, m.training) for m in module.modules() if m.training]
    if training:
        module.eval()
    try:
        yield
    finally:
        for m, flag in training:
            m.training = flag


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer, in a fixed order (about twice as fast as ``parameters()`` + ``buffers()``)."""
    return [t for m in module.modules() for t in itertools.chain(m._parameters.values(), m._buffers.values())
            if t is not None]


def _weights_key(module: nn.Module) -> int:
    """Changes whenever a parameter or buffer is replaced or modified in place (~0.5 ms for 300 tensors)."""
    tensors = _tensors(module)
    try:
        return hash(tuple((t.data_ptr(), t._version) for t in tensors))
    except RuntimeError:  # inference tensors carry no version counter: fall back to identity only
        return hash(tuple((t.data_ptr(), id(t)) for t in tensors))


def _module_device(module: nn.Module) -> torch.device:
    for t in _tensors(module):
        return t.device
    return torch.device("cpu")


def _single_tensor(y) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y
    raise TypeError(f"an engine's module must return one tensor, got {type(y).__name__}")


class _Shadow:
    """A private eval-mode copy of a module (channels_last, on ``device``), kept in sync with the original."""

    def __init__(self, module: nn.Module, device: torch.device, channels_last: bool):
        self._source = weakref.ref(module)  # weak: shadows live in caches keyed by the module
        self.device = device
        self.channels_last = channels_last
        self.copy = self._make(module)
        self.key = _weights_key(module)

    def _make(self, source: nn.Module) -> nn.Module:
        dup = copy.deepcopy(source)
        dup.eval().requires_grad_(False)
        for p in dup.parameters():
            p.grad = None
        dup.to(self.device)
        if self.channels_last:
            dup.to(memory_format=torch.channels_last)
        return dup

    def sync(self, force: bool = False) -> nn.Module:
        source = self._source()
        if source is None:
            return self.copy
        key = _weights_key(source)
        if key == self.key and not force:
            return self.copy
        src, dst = _tensors(source), _tensors(self.copy)
        if len(src) == len(dst) and all(s.shape == d.shape for s, d in zip(src, dst)):
            with torch.no_grad():
                for s, d in zip(src, dst):
                    d.copy_(s)  # copy_ keeps the destination's (channels_last) layout and identity
        else:  # the module's structure changed: copy it again
            self.copy = self._make(source)
        self.key = key
        return self.copy


# ----------------------------------------------------------------------------- engines
class Engine:
    """Runs a module's forward pass: ``engine(x)`` takes float32 NCHW, returns float32 on the CPU.

    Attributes: ``kind`` (one of :data:`ENGINE_KINDS`), ``precision`` (``'fp32'``, ``'bf16'``
    or ``'fp16'``), ``device``. Not thread-safe: use one engine per thread.
    """

    kind: str = "torch"
    precision: str = "fp32"

    def __init__(self, module: nn.Module, device: torch.device):
        self.device = device
        self._closed = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._closed:
            raise RuntimeError(f"this {self.kind!r} engine was closed")
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"an engine takes a 4-d NCHW tensor, got {getattr(x, 'shape', type(x))}")
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normalized(self, x: torch.Tensor, mean, std) -> torch.Tensor:
        """Outputs for a uint8 (0..255) NCHW batch: the same as ``engine((x / 255 - mean) / std)``.

        ``mean`` / ``std``: three numbers each, on the 0..1 scale. Loaders hand uint8 batches
        straight to this, so an engine that can normalise inside its own graph (OpenVINO) saves
        the float conversion on the host.
        """
        if self._closed:
            raise RuntimeError(f"this {self.kind!r} engine was closed")
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.dtype != torch.uint8:
            raise ValueError(f"normalized() takes a uint8 NCHW tensor, got {getattr(x, 'dtype', type(x))} "
                             f"{tuple(getattr(x, 'shape', ()))}")
        return self._forward_uint8(x, *_norm_variant(mean, std))

    def _forward_uint8(self, x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
        return self._forward(_normalize(x, mean, std))

    def refresh(self) -> None:
        """Re-read the module's weights now (needed only after writes through ``tensor.data``)."""

    def close(self) -> None:
        """Release this engine's copies and sessions. Calling it twice is harmless."""
        self._closed = True

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"{type(self).__name__}(kind={self.kind!r}, precision={self.precision!r}, device={str(self.device)!r}{state})"


def _norm_variant(mean, std) -> tuple[tuple, tuple]:
    """``(mean, std)`` as tuples of floats: how a uint8 variant is named in the runner caches."""
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _normalize(x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - m).div_(s)


class TorchEngine(Engine):
    """The PyTorch kinds: ``torch``, ``torch-cl``, ``torch-bf16``, ``torch-compile`` and ``cuda``."""

    def __init__(self, module: nn.Module, kind: str, device: torch.device, fp32: bool = False):
        super().__init__(module, device)
        self.kind = kind
        self._module = module
        self._shadow: _Shadow | None = None
        self._channels_last = kind != "torch"
        self._amp_dtype: torch.dtype | None = None
        self._compiled: _Compiled | None = None
        if kind == "torch":
            return
        if kind == "torch-bf16" or (kind == "torch-compile" and cpu_supports_bf16() and not fp32):
            self._amp_dtype = torch.bfloat16
        if device.type == "cuda" and not fp32:
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if kind == "torch-compile":  # compiling takes long: one compiled copy per module, kept in memory
            per_module = _COMPILED.setdefault(module, {})
            key = (str(device), self._amp_dtype)
            if key not in per_module:
                per_module[key] = _Compiled(_Shadow(module, device, channels_last=True))
            if per_module[key].failed:
                raise RuntimeError(f"torch.compile already failed for this module: {per_module[key].failed}")
            self._compiled = per_module[key]
            self._shadow = self._compiled.shadow
        elif kind == "cuda" and _module_device(module) == device:
            pass  # already on the GPU: run it in place, channels_last inputs only
        else:
            self._shadow = _Shadow(module, device, channels_last=True)
        self.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self._amp_dtype]

    def refresh(self) -> None:
        if self._shadow is not None:
            self._shadow.sync(force=True)

    def close(self) -> None:
        self._shadow = None
        self._compiled = None
        super().close()

    def _forward_uint8(self, x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
        # on a GPU: copy the 4x smaller uint8 batch, normalise there
        return self._forward(_normalize(x.to(self.device, non_blocking=True), mean, std))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float32, non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self._shadow is None:  # the module itself (reference 'torch', or a module already on the GPU)
            with _eval_mode(self._module), torch.no_grad(), self._autocast():
                y = _single_tensor(self._module(x))
            return y.float().cpu()
        module = self._shadow.sync()
        if self._compiled is not None:
            return self._forward_compiled(x)
        with torch.inference_mode(), self._autocast():
            y = _single_tensor(module(x))
        return y.float().cpu()

    def _forward_compiled(self, x: torch.Tensor) -> torch.Tensor:
        # Pad (or split) to the first batch size seen, so the graph compiles once per image size.
        compiled = self._compiled
        fn = compiled.function()
        n = x.shape[0]
        if compiled.batch is None:
            compiled.batch = n
        b = compiled.batch
        outs = []
        for start in range(0, n, b):
            chunk = x[start:start + b]
            k = chunk.shape[0]
            if k < b:
                pad = chunk.new_zeros((b - k, *chunk.shape[1:])).contiguous(memory_format=torch.channels_last)
                chunk = torch.cat([chunk, pad]).contiguous(memory_format=torch.channels_last)
            try:
                with torch.inference_mode(), self._autocast():
                    y = _single_tensor(fn(chunk))
            except Exception as e:  # noqa: BLE001 - inductor failures surface at the first call
                fallback = "torch-bf16" if self._amp_dtype is not None else "torch-cl"
                compiled.failed = f"{type(e).__name__}: {first_line(e)}"
                warnings.warn(f"visiontune: torch.compile failed ({type(e).__name__}: {first_line(e)}); "
                              f"running {fallback!r} instead", RuntimeWarning, stacklevel=3)
                self._compiled = None
                self.kind = fallback
                return self._forward(x)
            outs.append(y[:k].float().cpu())
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _autocast(self):
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._amp_dtype)


class _Compiled:
    """``torch.compile`` of a shadow copy, and the one batch size it was compiled for."""

    def __init__(self, shadow: _Shadow):
        self.shadow = shadow
        self._for = shadow.copy
        self._fn = torch.compile(shadow.copy, dynamic=False)
        self.batch: int | None = None
        self.failed = ""  # why the first compiled call failed, if it did

    def function(self):
        # In-place weight syncs reach the compiled graph (parameters are its inputs); a new copy needs a new compile.
        if self.shadow.copy is not self._for:
            self._for = self.shadow.copy
            self._fn = torch.compile(self._for, dynamic=False)
            self.batch = None
        return self._fn


# module -> {(device, autocast dtype): _Compiled}
_COMPILED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()

# ONNX exports and compiled sessions, shared between engines built on the same module:
# module -> {(kind, (C, H, W), threads, precision): (weights_key, runner)}
_RUNNERS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def clear_engine_cache() -> None:
    """Forget every cached ONNX export, compiled session and ``torch.compile`` result."""
    _RUNNERS.clear()
    _COMPILED.clear()


class _ExportedEngine(Engine):
    """Common part of ONNX Runtime and OpenVINO: export per input size, rebuild when weights change."""

    def __init__(self, module: nn.Module, device: torch.device, example_input_shape, cache_id: str | None = None,
                 uint8_norm: tuple | None = None, fp32: bool = False):
        super().__init__(module, device)
        # Held while the engine is open: a caller may pass a wrapper built just for this engine
        # (``nn.Sequential(body, pool)``), and later input sizes or uint8 inputs export from it again.
        self._module: nn.Module | None = module
        self._threads = torch.get_num_threads()
        self._runners: dict[tuple, object] = {}
        self._key: int | None = None
        # the on-disk export cache describes the weights as they are now: used only while they stay so
        self._cache_id, self._cache_id_key = cache_id, _weights_key(module)
        self.precision = "fp32" if fp32 else self._choose_precision()
        # build now, so failures surface in create_engine: the uint8 variant when that is what will run
        self._runner(tuple(example_input_shape[1:]), self._upfront_variant(uint8_norm))

    def _upfront_variant(self, uint8_norm: tuple | None) -> tuple | None:
        return None  # ONNX Runtime normalises on the host and runs the float32 model

    def _choose_precision(self) -> str:
        return "fp32"

    def _build(self, onnx_bytes: bytes, uint8_norm: tuple | None = None):
        """A runner for float32 inputs, or (``uint8_norm = (mean, std)``) for uint8 ones it normalises itself."""
        raise NotImplementedError

    def _run(self, runner, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _runner(self, chw: tuple, uint8_norm: tuple | None = None):
        module = self._module
        key = _weights_key(module)
        if key != self._key:
            self._runners.clear()
            self._key = key
        variant = (chw, uint8_norm)
        if variant in self._runners:
            return self._runners[variant]
        shared = _RUNNERS.setdefault(module, {})
        cache_key = (self.kind, chw, uint8_norm, self._threads, self.precision)
        hit = shared.get(cache_key)
        if hit is not None and hit[0] == self._key:
            runner = hit[1]
        else:
            runner = self._build_cached(module, chw, uint8_norm)
            shared[cache_key] = (self._key, runner)
        self._runners[variant] = runner
        return runner

    def _build_cached(self, module: nn.Module, chw: tuple, uint8_norm: tuple | None = None):
        """Build from the on-disk export when there is a valid one, else export (and store it)."""
        path = None
        if self._cache_id is not None and self._key == self._cache_id_key:
            path = _export_cache_path(self._cache_id, chw)
            try:
                data = path.read_bytes()
            except OSError:
                data = None
            if data is not None:
                try:
                    runner = self._build(data, uint8_norm)
                    os.utime(path)  # recently used: kept by the pruning below
                    return runner
                except Exception:  # noqa: BLE001 - a damaged file: export again below
                    path.unlink(missing_ok=True)
        onnx_bytes = _export_onnx(module, (1, *chw))
        runner = self._build(onnx_bytes, uint8_norm)
        if path is not None:
            from ..utils.atomic import atomic_write_bytes

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, onnx_bytes)
                _prune_export_cache(path.parent)
            except OSError:
                pass  # a read-only or full cache only costs the next process an export
        return runner

    def refresh(self) -> None:
        self._runners.clear()
        self._key = None
        if self._module is not None:
            _RUNNERS.pop(self._module, None)

    def close(self) -> None:
        self._runners.clear()
        self._module = None
        super().close()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        runner = self._runner(tuple(x.shape[1:]))
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._run(runner, arr))


class OnnxRuntimeEngine(_ExportedEngine):
    kind = "onnxruntime"

    def _build(self, onnx_bytes: bytes, uint8_norm: tuple | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        return session, session.get_inputs()[0].name

    def _run(self, runner, x: np.ndarray) -> np.ndarray:
        session, name = runner
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _ov_core():
    import openvino as ov

    return ov.Core()


class OpenVinoEngine(_ExportedEngine):
    kind = "openvino"

    def _choose_precision(self) -> str:
        caps = _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return "bf16" if "BF16" in caps else "fp32"

    def _upfront_variant(self, uint8_norm: tuple | None) -> tuple | None:
        return None if uint8_norm is None else _norm_variant(*uint8_norm)

    def _build(self, onnx_bytes: bytes, uint8_norm: tuple | None = None):
        core = _ov_core()
        model = core.read_model(onnx_bytes)
        if uint8_norm is not None:
            model = _ov_uint8_input(model, *uint8_norm)
        config = {
            "INFERENCE_NUM_THREADS": self._threads,
            # Streams: each request runs on its own thread(s), and a batch is split across them (see _run).
            "PERFORMANCE_HINT": "THROUGHPUT",
            # Explicit f32 matters: on AMX CPUs OpenVINO would otherwise pick bf16 silently.
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
        }
        compiled = core.compile_model(model, "CPU", config)
        n_requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        return compiled, [compiled.create_infer_request() for _ in range(n_requests)]

    def _forward_uint8(self, x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
        runner = self._runner(tuple(x.shape[1:]), (mean, std))
        return torch.from_numpy(self._run(runner, x.detach().cpu().contiguous().numpy()))

    def _run(self, runner, x: np.ndarray) -> np.ndarray:
        """The batch split into one contiguous part per stream, run at once. On 2 CPU cores two
        single-thread streams ran 105 images/s end to end where one 2-thread stream ran 90-105: a stream
        never waits at a per-layer barrier for a thread that the decoding threads pre-empted."""
        _, requests = runner
        parts = [p for p in np.array_split(x, min(len(requests), max(len(x), 1))) if len(p)] or [x]
        for request, part in zip(requests, parts):
            request.start_async({0: part}, share_inputs=True)
        for request in requests[:len(parts)]:
            request.wait()
        # Each request reuses its output buffer: copy before the next call overwrites it.
        return np.concatenate([np.array(r.get_output_tensor(0).data, dtype=np.float32, copy=True)
                               for r in requests[:len(parts)]])


def _ov_uint8_input(model, mean: tuple, std: tuple):
    """The OpenVINO model taking uint8 NCHW and normalising inside the graph (``(x - 255 m) / 255 s``)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NCHW"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([255.0 * m for m in mean]).scale(
        [255.0 * s for s in std])
    return ppp.build()


def _export_cache_path(cache_id: str, chw: tuple):
    """Where the ONNX export of module ``cache_id`` for inputs ``chw`` is kept (per torch version)."""
    import hashlib

    from .cache import default_cache_dir

    tag = hashlib.sha256(repr((cache_id, tuple(chw), torch.__version__, _ONNX_OPSET)).encode()).hexdigest()[:32]
    return default_cache_dir() / "engines" / f"{tag}.onnx"


def _prune_export_cache(folder, keep: int = EXPORT_CACHE_KEEP) -> None:
    """Keep the ``keep`` most recently used exports (each is the size of the weights)."""
    files = sorted(folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)


def _export_onnx(module: nn.Module, shape: tuple) -> bytes:
    """ONNX bytes of ``module`` for inputs ``shape`` with a dynamic batch axis.

    Uses the TorchScript exporter (fast, sub-second for a small CNN) and falls back to the
    dynamo exporter where that fails or is gone.
    """
    import io

    example = torch.zeros(shape, device=_module_device(module))
    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    errors = []
    with _eval_mode(module), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        try:
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes=axes, opset_version=_ONNX_OPSET,
                              do_constant_folding=True)
            return buf.getvalue()
        except Exception as e:  # noqa: BLE001 - try the other exporter
            errors.append(f"torchscript exporter: {type(e).__name__}: {first_line(e)}")
        try:
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(module, (example,), None, dynamo=True, input_names=["input"],
                                        output_names=["output"], dynamic_shapes=({0: batch},), verbose=False)
            return program.model_proto.SerializeToString()
        except Exception as e:  # noqa: BLE001
            errors.append(f"dynamo exporter: {type(e).__name__}: {first_line(e)}")
    raise RuntimeError("ONNX export failed: " + "; ".join(errors))


# ----------------------------------------------------------------------------- factory
def _auto_order(device: torch.device, n_images: int | None) -> list[str]:
    order = list(ENGINE_KINDS) if device.type == "cuda" else list(_CPU_KINDS)
    if n_images is None or n_images < COMPILE_MIN_IMAGES:
        order.remove("torch-compile")
    return order


def _build(kind: str, module: nn.Module, example_input_shape, device: torch.device, cache_id: str | None,
           uint8_norm: tuple | None = None, fp32: bool = False) -> Engine:
    if kind == "onnxruntime":
        return OnnxRuntimeEngine(module, torch.device("cpu"), example_input_shape, cache_id)
    if kind == "openvino":
        return OpenVinoEngine(module, torch.device("cpu"), example_input_shape, cache_id, uint8_norm, fp32=fp32)
    if kind == "cuda":
        if device.type != "cuda" or device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return TorchEngine(module, "cuda", device, fp32=fp32)
    if kind == "torch":
        return TorchEngine(module, "torch", _module_device(module))
    return TorchEngine(module, kind, torch.device("cpu"), fp32=fp32)


def create_engine(
    module: nn.Module,
    kind: str = "auto",
    example_input_shape: tuple[int, int, int, int] = (1, 3, 224, 224),
    device: str | torch.device | None = None,
    *,
    n_images: int | None = None,
    strict: bool = False,
    cache_id: str | None = None,
    uint8_norm: tuple | None = None,
    precision: str = "auto",
) -> Engine:
    """Build the forward engine for ``module`` (its outputs must be a single tensor).

    ``kind``: ``'auto'`` or one of :data:`ENGINE_KINDS`. With ``'auto'`` the environment
    variable ``VISIONTUNE_ENGINE``, when set, names the kind. ``example_input_shape`` is the
    NCHW shape the exports are built for up front (other batch sizes work; another image
    size triggers one more export). ``device``: where the module should run; by default the
    device of its parameters, so a module on a GPU gets the ``cuda`` engine. ``n_images``:
    how many images will go through, which lets ``'auto'`` pick ``torch-compile`` only when
    its compile time pays off. A kind that cannot be built falls back to the next one in
    :data:`ENGINE_KINDS` with a warning (silently, with ``'auto'``, for kinds merely not
    installed); ``strict=True`` makes a forced kind that cannot run a :class:`RuntimeError`.
    An unknown kind is a :class:`ValueError` that lists the valid ones. ``cache_id``: a digest that
    names the module's architecture and current weights; with it, ONNX exports are kept on disk
    and reused by later processes (see the module docstring). ``uint8_norm``: ``(mean, std)`` when
    the inputs will come as uint8 through :meth:`Engine.normalized`, so the variant built up front
    is the one that will run. ``precision``: ``'auto'`` (bf16 / fp16 where the hardware runs it fast)
    or ``'fp32'``, for numbers that must match an fp32 export to ~1e-6 (validation, TTA, predictions:
    what ``visiontune predict`` with the exported model computes); ``torch-bf16`` then steps aside.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"create_engine needs a torch.nn.Module, not {type(module).__name__}")
    kind = _check_kind(kind)
    if precision not in ("auto", "fp32"):
        raise ValueError(f"precision must be 'auto' or 'fp32', not {precision!r}")
    fp32 = precision == "fp32"
    if kind == "auto" and os.environ.get(ENV_VAR, "").strip():
        kind = _check_kind(os.environ[ENV_VAR], source=f"environment variable {ENV_VAR}")
    if len(tuple(example_input_shape)) != 4:
        raise ValueError(f"example_input_shape must be NCHW (4 numbers), got {tuple(example_input_shape)}")
    dev = torch.device(device) if device is not None else _module_device(module)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available")

    if kind == "auto":
        candidates = _auto_order(dev, n_images)
    else:
        # The forced kind first, then what 'auto' would try after it.
        order = _auto_order(dev, n_images)
        candidates = [kind] + [k for k in order if ENGINE_KINDS.index(k) > ENGINE_KINDS.index(kind)]
        if kind == "cuda" and dev.type != "cuda":
            candidates = ["cuda"] + _auto_order(torch.device("cpu"), n_images)

    problems: list[tuple[str, str, bool]] = []  # (kind, reason, it was installed but failed to build)
    for candidate in candidates:
        reason = _unavailable_reason(candidate, dev)
        if reason is None and fp32 and candidate == "torch-bf16":
            reason = "fp32 was asked for"
        failed = False
        if reason is None:
            try:
                engine = _build(candidate, module, example_input_shape, dev, cache_id, uint8_norm, fp32)
            except Exception as e:  # noqa: BLE001 - any build failure means: try the next kind
                reason, failed = f"{type(e).__name__}: {first_line(e)}", True
        if reason is None:
            # 'auto' skips what is not installed silently; a forced kind or a failed build is worth a line.
            if problems and (kind != "auto" or any(f for _, _, f in problems)):
                tried = "; ".join(f"{k}: {r}" for k, r, _ in problems)
                warnings.warn(f"visiontune: engine {problems[0][0]!r} not used ({tried}); using {candidate!r}",
                              RuntimeWarning, stacklevel=2)
            return engine
        if strict and kind != "auto":
            raise RuntimeError(f"engine {kind!r} cannot run here: {reason}")
        problems.append((candidate, reason, failed))
    raise RuntimeError("no engine could be built: " + "; ".join(f"{k}: {r}" for k, r, _ in problems))


# ----------------------------------------------------------------------------- running
def _batch_input(batch) -> torch.Tensor:
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, dict):
        return batch["x"] if "x" in batch else batch["image"]
    return batch


def _loader_batches(loader):
    """An iterator over ``loader``'s batches as an engine takes them: a visiontune Loader's uint8 batches
    (its ``normalizer`` says how to normalise them; engines do it inside their graph), else what it yields."""
    raw = getattr(loader, "unnormalized", None)
    return iter(raw() if raw is not None and getattr(loader, "normalizer", None) is not None else loader)


class _ReadAhead:
    """The batches of a loader, read by a background thread into a bounded queue (see :func:`reading_ahead`)."""

    def __init__(self, loader, depth: int):
        import queue
        import threading

        self.dataset = getattr(loader, "dataset", None)
        self.normalizer = getattr(loader, "normalizer", None)
        try:
            self._n_batches = len(loader)
        except TypeError:
            self._n_batches = None
        self._source = _loader_batches(loader)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="visiontune-read-ahead", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        import queue

        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for batch in self._source:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the reader, raised there
            put(("error", e))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (cancelling its decode jobs) runs here, in its thread

    def __len__(self) -> int:
        if self._n_batches is None:
            raise TypeError("the loader read ahead has no length")
        return self._n_batches

    def __iter__(self):
        for x, y in self.unnormalized():
            if self.normalizer is not None and x.dtype == torch.uint8:
                x = self.normalizer.normalize(x)
            yield x, y

    def unnormalized(self):
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        import queue

        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


@contextlib.contextmanager
def reading_ahead(loader, depth: int = 16):
    """``loader``'s batches, decoded ahead by a background thread (at most ``depth`` batches kept) while
    the block does something else, for example building an engine: the ONNX export runs mostly on one
    core, so on a 2-core CPU decoding can use the other. Give what it yields to :func:`run_engine`
    in place of the loader; it can be read once.
    With a ``normalizer`` the thread reads the loader's uint8 batches and ``run_engine`` normalises.

    >>> import torch
    >>> from torch import nn
    >>> loader = [(torch.full((2, 3, 1, 1), float(i)), torch.zeros(2)) for i in range(5)]
    >>> with reading_ahead(loader, depth=2) as early:
    ...     engine = create_engine(nn.Flatten(), "torch", example_input_shape=(1, 3, 1, 1))
    ...     out = run_engine(engine, early)
    >>> out[:, 0].tolist()
    [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
    """
    early = _ReadAhead(loader, depth)
    try:
        yield early
    finally:
        early.close()


def run_engine(
    engine: Engine,
    loader: Iterable,
    out: np.ndarray | None = None,
    dtype=np.float32,
    progress: bool = False,
    timings: dict | None = None,
) -> np.ndarray:
    """Run every batch of ``loader`` (``(x, y)`` pairs, x float32 normalised NCHW) through ``engine``.

    Returns the outputs stacked in loader order, as ``dtype``. ``out`` (for example a
    ``np.memmap`` of the activation cache) receives the rows in place and is returned (cut
    to the rows written); it must have room for every image. Without ``out`` the array is
    allocated once when the loader's dataset length is known.

    ``timings``, when given, is updated with seconds summed over the run (added to any
    values already there, so several runs accumulate): ``load_s`` (waiting for the loader:
    decoding and transforms), ``forward_s`` (the engine), ``write_s`` (copying into the
    result), ``total_s``, plus ``n_images``, ``n_batches`` and ``img_per_s``.
    """
    try:
        n_expected = len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        n_expected = None
    if out is not None and n_expected is not None and len(out) < n_expected:
        raise ValueError(f"out has room for {len(out)} rows but the loader yields {n_expected} images")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        try:
            total = len(loader)  # type: ignore[arg-type]
        except TypeError:
            total = None
        bar = tqdm(total=total, desc=f"forward ({engine.kind})", unit="batch", leave=False, disable=None)  # quiet when not a TTY

    load_s = forward_s = write_s = 0.0
    written = n_batches = 0
    chunks: list[np.ndarray] = []
    start = time.perf_counter()
    # A visiontune Loader hands over its uint8 batches and their normalisation: the engine applies it
    norm = getattr(loader, "normalizer", None)
    iterator = _loader_batches(loader)
    try:
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            x = _batch_input(batch)
            t1 = time.perf_counter()
            y = (engine.normalized(x, norm.mean, norm.std) if x.dtype == torch.uint8 and norm is not None
                 else engine(x.float())).numpy()
            t2 = time.perf_counter()
            if out is None and n_expected is not None:
                out = np.empty((n_expected, *y.shape[1:]), dtype=dtype)
            if out is not None:
                if written + len(y) > len(out):
                    raise ValueError(f"out has room for {len(out)} rows but the loader yielded more")
                out[written:written + len(y)] = y
            else:
                chunks.append(y.astype(dtype, copy=False))
            written += len(y)
            n_batches += 1
            t3 = time.perf_counter()
            load_s += t1 - t0
            forward_s += t2 - t1
            write_s += t3 - t2
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    total_s = time.perf_counter() - start

    if out is None:
        result = np.concatenate(chunks) if chunks else np.empty((0,), dtype=dtype)
    else:
        result = out if written == len(out) else out[:written]
    if timings is not None:
        for name, value in (("load_s", load_s), ("forward_s", forward_s), ("write_s", write_s),
                            ("total_s", total_s), ("n_images", written), ("n_batches", n_batches)):
            timings[name] = timings.get(name, 0) + value
        timings["img_per_s"] = timings["n_images"] / timings["total_s"] if timings["total_s"] > 0 else 0.0
    return result


def measure_engines(
    module: nn.Module,
    batch: torch.Tensor,
    kinds: Iterable[str] | None = None,
    repeats: int = 3,
    *,
    warmup: int = 1,
    build_s: dict | None = None,
) -> dict[str, float]:
    """Pure forward speed of each engine on ``batch``: ``{kind: images per second}`` (best of ``repeats``).

    ``kinds`` defaults to :func:`available_engines`. A kind that cannot be built here is
    left out with a warning. ``build_s``, when given, receives each kind's export/compile
    time plus its first (warm-up) call, in seconds.
    """
    kinds = list(kinds) if kinds is not None else available_engines(_module_device(module))
    results: dict[str, float] = {}
    for kind in kinds:
        _check_kind(kind)
        t0 = time.perf_counter()
        try:
            engine = create_engine(module, kind, example_input_shape=tuple(batch.shape), strict=True)
            for _ in range(max(warmup, 1)):
                engine(batch)
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"visiontune: skipping engine {kind!r}: {type(e).__name__}: {first_line(e)}",
                          RuntimeWarning, stacklevel=2)
            continue
        if engine.kind != kind:  # torch.compile failed at its first call and fell back
            engine.close()
            continue
        if build_s is not None:
            build_s[kind] = time.perf_counter() - t0
        best = float("inf")
        for _ in range(max(repeats, 1)):
            t = time.perf_counter()
            engine(batch)
            best = min(best, time.perf_counter() - t)
        results[kind] = batch.shape[0] / best
        engine.close()
    return results
