"""The command line where a user removed an optional package: every command still ends with exit 0.

``onnx``, ``onnxscript`` and ``onnxruntime`` are core dependencies and ``openvino`` is the ``cpu-fast``
extra, but a user may uninstall one. Each run here hides packages from a fresh process
(``sys.modules[name] = None``, so importing them fails as if they were not installed) and runs the CLI:
a missing engine is skipped, a missing ``onnx`` turns the export into TorchScript with one warning line.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from vt_cli_helpers import ROOT

from visiontune.demo import make_shapes_dataset

HIDE_AND_RUN = ("import sys\n"
                "for name in sys.argv.pop(1).split(','):\n"
                "    sys.modules[name] = None\n"
                "from visiontune.cli import main\n"
                "sys.exit(main(sys.argv[1:]))\n")
TRAIN = ["--fast", "--size", "64", "--precompute-aug", "0", "--tta", "1", "--quiet"]
NO_ONNX = ("visiontune: onnx is not installed, so the model is exported as TorchScript (model.pt) instead of "
           "ONNX; `pip install onnx onnxruntime` for ONNX")


def run_without(hidden: str, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE_AND_RUN, hidden, *map(str, args)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes")


def test_without_onnx_train_export_and_predict_use_torchscript(cli_env, shapes, tmp_path):
    run = tmp_path / "run"
    train = run_without("onnx", cli_env, "train", shapes, "--out", run, *TRAIN)
    assert (train.returncode, train.stderr) == (0, NO_ONNX + "\n")
    assert {"model.pt", "model.json", "report.html"} <= {p.name for p in run.iterdir()}
    assert not (run / "model.onnx").exists()
    assert json.loads((run / "model.json").read_text())["format"] == "torchscript"

    export = run_without("onnx", cli_env, "export", run)
    assert (export.returncode, export.stderr, export.stdout) == (0, NO_ONNX + "\n",
                                                               f"exported {run / 'model.pt'} (+ model.json)\n")
    image = shapes / "valid" / "circles" / "circles_000.png"
    predict = run_without("onnx", cli_env, "predict", run, image, "--top-k", "1", "--format", "json")
    assert (predict.returncode, predict.stderr) == (0, "")
    assert [row["top"][0]["label"] for row in json.loads(predict.stdout)] == ["circles"]


def test_without_the_fast_engines_train_is_silent_and_exports_onnx(cli_env, shapes, tmp_path):
    run = tmp_path / "run"
    env = dict(cli_env, VISIONTUNE_CACHE=str(tmp_path / "cache"))  # a cold cache: the engine is built
    train = run_without("openvino,onnxruntime", env, "train", shapes, "--out", run, *TRAIN)
    assert (train.returncode, train.stderr) == (0, "")
    assert json.loads((run / "model.json").read_text())["format"] == "onnx"
    assert (run / "model.onnx").stat().st_size > 1_000_000 and (run / "report.html").is_file()
