"""Which engine kinds can run here, and :func:`create_engine`, which builds the best one."""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import warnings

import torch
from torch import nn

from ..utils.errors import first_line
from ..utils.hardware import cpu_supports_bf16
from .engines_base import _COMPILED, _RUNNERS, Engine, _module_device
from .engines_exported import OnnxRuntimeEngine, OpenVinoEngine
from .engines_torch import TorchEngine

ENGINE_KINDS: tuple[str, ...] = ("cuda", "openvino", "onnxruntime", "torch-compile", "torch-bf16", "torch-cl", "torch")
"""Every engine kind, best first (``'auto'`` walks this order, skipping what is unavailable)."""

COMPILE_MIN_IMAGES = 20_000
"""``'auto'`` considers ``torch-compile`` only for at least this many images: its ~20-45 s
compile pays for itself only over a long run (and ONNX Runtime / OpenVINO, when installed,
are as fast without the wait)."""

ENV_VAR = "VISIONTUNE_ENGINE"
_CPU_KINDS = ENGINE_KINDS[1:]


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


def clear_engine_cache() -> None:
    """Forget every cached ONNX export, compiled session and ``torch.compile`` result."""
    _RUNNERS.clear()
    _COMPILED.clear()


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
