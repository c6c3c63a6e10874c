"""The :class:`Engine` interface and the module helpers every engine kind shares."""
from __future__ import annotations

import copy
import itertools
import weakref

import torch
from torch import nn


# ----------------------------------------------------------------------------- module helpers
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


_COMPILED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()

# ONNX exports and compiled sessions, shared between engines built on the same module:
# module -> {(kind, (C, H, W), threads, precision): (weights_key, runner)}
_RUNNERS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
