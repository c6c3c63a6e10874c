"""The one ONNX exporter: used by the forward engines (ONNX Runtime / OpenVINO) and by ``export``.

One opset and one exporter, so the graph an engine runs during training is the graph a user gets
from ``visiontune export``: the TorchScript-based exporter (fast, sub-second for a small CNN, one
self-contained file), with the dynamo exporter as the fallback where that fails or is gone. The
batch axis is dynamic; the spatial size is the one given.

>>> import torch, onnx
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
>>> proto = onnx.load_from_string(export_onnx(net, (1, 3, 8, 8)))
>>> proto.opset_import[0].version == ONNX_OPSET, [i.name for i in proto.graph.input]
(True, ['input'])
"""
from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

from ..utils.errors import first_line

ONNX_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Run ``module`` in eval mode, restoring every submodule's own train flag afterwards."""
    training = [(m, m.training) for m in module.modules() if m.training]
    if training:
        module.eval()
    try:
        yield
    finally:
        for m, flag in training:
            m.training = flag


def export_onnx(module: nn.Module, input_shape: tuple, *, input_name: str = INPUT_NAME,
                output_name: str = OUTPUT_NAME) -> bytes:
    """ONNX bytes of ``module`` (run in eval mode) for NCHW inputs of ``input_shape``, batch axis dynamic.

    Raises ``RuntimeError`` naming both exporters' errors when neither can export the module.
    """
    params = next(iter(module.parameters()), None)
    example = torch.zeros(tuple(input_shape), device=params.device if params is not None else "cpu")
    errors = []
    with eval_mode(module), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        buf = io.BytesIO()
        try:
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=[input_name],
                              output_names=[output_name], opset_version=ONNX_OPSET, do_constant_folding=True,
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
            return buf.getvalue()
        except Exception as e:  # noqa: BLE001 - any failure: try the other exporter
            errors.append(f"TorchScript exporter: {type(e).__name__}: {first_line(e)}")
        try:
            program = torch.onnx.export(module, (example,), None, dynamo=True, input_names=[input_name],
                                        output_names=[output_name], opset_version=ONNX_OPSET, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
            return program.model_proto.SerializeToString()  # weights inline: one self-contained file
        except Exception as e:  # noqa: BLE001
            errors.append(f"dynamo exporter: {type(e).__name__}: {first_line(e)}")
    raise RuntimeError("ONNX export failed: " + "; ".join(errors))
