"""Forward engines (bf16/channels_last, ONNX Runtime, OpenVINO, torch.compile, CUDA) and the activation cache."""
from .engine import (
    COMPILE_MIN_IMAGES,
    ENGINE_KINDS,
    Engine,
    available_engines,
    clear_engine_cache,
    cpu_supports_bf16,
    create_engine,
    measure_engines,
    run_engine,
)

__all__ = [
    "COMPILE_MIN_IMAGES", "ENGINE_KINDS", "Engine", "available_engines", "clear_engine_cache", "cpu_supports_bf16", "create_engine",
    "measure_engines", "run_engine",
]
