"""The PyTorch engine kinds: ``torch``, ``torch-cl``, ``torch-bf16``, ``torch-compile`` and ``cuda``."""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from ..models.onnx import eval_mode as _eval_mode
from ..utils.errors import first_line
from ..utils.hardware import cpu_supports_bf16
from .engines_base import (
    _COMPILED,
    Engine,
    _module_device,
    _normalize,
    _Shadow,
    _single_tensor,
)


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
