"""predict / submit on many images: a progress bar on a terminal, nothing in a log, the same rows either way."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visiontune.infer.export import export_model
from visiontune.infer.exported import ExportedModel
from visiontune.infer.predict import predict_with_progress

ROOT = Path(__file__).resolve().parents[2]
PRE = {"input_size": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bilinear", "crop_pct": 0.875}
N = 70


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
                        nn.LogSoftmax(1)).eval()
    export_model(net, d / "model", preprocessing=PRE, classes=["cat", "dog"])
    rng = np.random.default_rng(0)
    (d / "test").mkdir()
    for i in range(N):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(d / "test" / f"{i}.png")
    return d / "model", d / "test"


def test_chunked_prediction_gives_the_same_rows(model_and_images, tmp_path):
    model, images = model_and_images
    m = ExportedModel.load(model)
    paths = sorted(images.glob("*.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(5, tmp_path / "bad.png")
    with pytest.warns(UserWarning, match=r"1 of 71 image\(s\) could not be read"):
        chunked = predict_with_progress(m, paths, batch_size=4, progress=False)  # 16 images a chunk
    assert m.unreadable == [(str(tmp_path / "bad.png"), m.unreadable[0][1])]
    with pytest.warns(UserWarning):
        whole = m.predict_images(paths, batch_size=4)
    assert np.isnan(chunked[5]).all()
    np.testing.assert_array_equal(np.delete(chunked, 5, 0), np.delete(whole, 5, 0))


def _run(code: str, tty: bool) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not tty:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        return p.returncode, p.stderr
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return p.wait(timeout=300), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("call,desc", [
    ("from visiontune.infer.predict import predict_paths; predict_paths(MODEL, [IMAGES])", "predict"),
    ("from visiontune.infer.submit import make_submission; make_submission(MODEL, IMAGES, OUT)", "submission"),
])
def test_progress_on_a_terminal_and_silence_in_a_log(model_and_images, tmp_path, call, desc):
    model, images = model_and_images
    code = textwrap.dedent(f"""
        MODEL, IMAGES, OUT = {str(model)!r}, {str(images)!r}, {str(tmp_path / 'sub.csv')!r}
        {call}
    """)
    rc, err = _run(code, tty=True)
    assert rc == 0, err
    assert f"\r{desc}:   0%|" in err and f"| 0/{N} [" in err and "\rchecking images:   0%|" in err, err
    rc, err = _run(code, tty=False)
    assert rc == 0 and err == "", err
