"""Export a trained model to ONNX or TorchScript, with its preprocessing in a JSON beside it.

The exported graph takes a float32 NCHW batch, already normalised (``(x / 255 - mean) / std``),
with a dynamic batch axis and a fixed ``input_size`` x ``input_size`` spatial size. It outputs:

- ``kind='single'``: class probabilities (the trained head's LogSoftmax is wrapped with ``exp``);
- ``kind='multi'``: per-class sigmoid probabilities (unchanged);
- ``kind='reg'``: raw regression values (unchanged).

``{name}.json`` beside the model holds everything needed to run it without visiontune::

    {"format", "file", "input_size", "mean", "std", "interpolation", "crop_pct",
     "classes", "kind", "visiontune_version", "input_name", "output_name"}

>>> import torch, tempfile
>>> m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2), torch.nn.LogSoftmax(1))
>>> pre = {"input_size": 8, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "crop_pct": 1.0}
>>> p = export_model(m, tempfile.mkdtemp(), preprocessing=pre, classes=["a", "b"], fmt="torchscript")
>>> p.name
'model.pt'
"""
from __future__ import annotations

import copy
import importlib.util
import io
import logging
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from visiontune.imaging.views import VIEW_NAMES
from visiontune.models.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from visiontune.utils.atomic import atomic_write_bytes, atomic_write_json
from visiontune.utils.kinds import KINDS

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PREPROCESSING_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


class _ProbabilityWrapper(nn.Module):
    """Turns a single-label model's log-probabilities into probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.model(x))


def _visiontune_version() -> str:
    try:
        from importlib.metadata import version

        return version("visiontune")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def _check_args(preprocessing: dict, classes, kind: str, fmt: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"Invalid kind {kind!r}. Only {', '.join(KINDS)} are supported.")
    if fmt not in FORMATS:
        raise ValueError(f"Invalid export format {fmt!r}. Only {', '.join(FORMATS)} are supported.")
    missing = [k for k in PREPROCESSING_KEYS if k not in preprocessing]
    if missing:
        raise ValueError(f"preprocessing is missing {', '.join(missing)} (needs {', '.join(PREPROCESSING_KEYS)})")
    if not classes:
        raise ValueError("classes must name at least one output")


def _onnx_installed() -> bool:
    """Whether the ``onnx`` package (which ``torch.onnx.export`` needs) can be imported here."""
    try:
        return importlib.util.find_spec("onnx") is not None
    except (ImportError, ValueError):
        return False


def _export_torchscript(model: nn.Module, example: torch.Tensor) -> bytes:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning and the torch.jit deprecation notices
        traced = torch.jit.trace(model, example, check_trace=False)
        buf = io.BytesIO()  # saved to memory, then written atomically
        torch.jit.save(traced, buf)
    return buf.getvalue()


def export_model(
    model: nn.Module,
    out_dir,
    *,
    preprocessing: dict,
    classes: list[str],
    kind: str = "single",
    fmt: str = "onnx",
    name: str = "model",
    tta_views: Sequence[str] | None = None,
) -> Path:
    """Write ``out_dir/{name}.onnx`` (or ``.pt``) and ``out_dir/{name}.json``; return the model file's path.

    ``model`` is not modified: a CPU copy in eval mode is exported. ``preprocessing`` needs
    ``input_size, mean, std, interpolation, crop_pct`` (extra keys are ignored).

    ``onnx`` is a dependency of visiontune; where it has been removed, ``fmt='onnx'`` writes
    TorchScript (``{name}.pt``, ``"format": "torchscript"`` in the JSON) with one warning line instead.
    ``tta_views``: the views (:mod:`visiontune.imaging.views`, starting with ``'center'``) that
    ``predict --tta`` averages, written to the JSON; the run passes those its TTA accuracy used.
    """
    _check_args(preprocessing, classes, kind, fmt)
    if tta_views is not None and (not tta_views or tta_views[0] != "center"
                                  or any(v not in VIEW_NAMES for v in tta_views)):
        raise ValueError(f"tta_views must start with 'center' and name views among {', '.join(VIEW_NAMES)}; "
                         f"got {list(tta_views)}")
    if fmt == "onnx" and not _onnx_installed():
        log.warning("visiontune: onnx is not installed, so the model is exported as TorchScript (%s.pt) "
                    "instead of ONNX; `pip install onnx onnxruntime` for ONNX", name)
        fmt = "torchscript"
    out_dir = Path(out_dir)
    size = int(preprocessing["input_size"])

    net = copy.deepcopy(model).cpu().float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if kind == "single":
        net = _ProbabilityWrapper(net).eval()
    example = torch.zeros(2, 3, size, size, dtype=torch.float32)

    if fmt == "onnx":
        data = export_onnx(net, tuple(example.shape), input_name=INPUT_NAME, output_name=OUTPUT_NAME)
    else:
        data = _export_torchscript(net, example)

    model_path = out_dir / f"{name}{FORMATS[fmt]}"
    atomic_write_bytes(model_path, data)
    meta = {
        "format": fmt,
        "file": model_path.name,
        "input_size": size,
        "mean": [float(v) for v in preprocessing["mean"]],
        "std": [float(v) for v in preprocessing["std"]],
        "interpolation": str(preprocessing["interpolation"]),
        "crop_pct": float(preprocessing["crop_pct"]),
        "classes": [str(c) for c in classes],
        "kind": kind,
        "visiontune_version": _visiontune_version(),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    if tta_views is not None:
        meta["tta_views"] = list(tta_views)
    atomic_write_json(out_dir / f"{name}.json", meta)
    log.info("exported %s (%s, %d classes) to %s", kind, fmt, len(classes), model_path)
    return model_path
