"""The engines that run an ONNX export: ONNX Runtime and OpenVINO (export cached in memory and on disk)."""
from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch import nn

from ..models.onnx import ONNX_OPSET, export_onnx
from .engines_base import _RUNNERS, Engine, _norm_variant, _weights_key

EXPORT_CACHE_KEEP = 8  # ONNX exports kept on disk (the most recently used)


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
        onnx_bytes = export_onnx(module, (1, *chw))
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

    tag = hashlib.sha256(repr((cache_id, tuple(chw), torch.__version__, ONNX_OPSET)).encode()).hexdigest()[:32]
    return default_cache_dir() / "engines" / f"{tag}.onnx"


def _prune_export_cache(folder, keep: int = EXPORT_CACHE_KEEP) -> None:
    """Keep the ``keep`` most recently used exports (each is the size of the weights)."""
    files = sorted(folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)
