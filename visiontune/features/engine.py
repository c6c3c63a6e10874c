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

from ..utils.hardware import cpu_supports_bf16
from .engines_base import Engine
from .engines_exported import OnnxRuntimeEngine, OpenVinoEngine
from .engines_torch import TorchEngine
from .factory import (
    COMPILE_MIN_IMAGES,
    ENGINE_KINDS,
    ENV_VAR,
    available_engines,
    clear_engine_cache,
    create_engine,
)
from .runner import measure_engines, reading_ahead, run_engine

# Agreement with the float model that the engines are held to (documented above; the tests use them).
_FP32_TOL = 1e-3
_LOWP_TOL = 6e-2
_LOWP_MEAN_COSINE = 0.999
_LOWP_MIN_COSINE = 0.995

__all__ = [
    "COMPILE_MIN_IMAGES",
    "ENGINE_KINDS",
    "ENV_VAR",
    "Engine",
    "OnnxRuntimeEngine",
    "OpenVinoEngine",
    "TorchEngine",
    "available_engines",
    "clear_engine_cache",
    "create_engine",
    "cpu_supports_bf16",
    "measure_engines",
    "reading_ahead",
    "run_engine",
]
