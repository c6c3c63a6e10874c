"""kill -9 during training, then resume from the checkpoint: the same final metrics as an uninterrupted run.

Both runs are separate processes (vt_train_child.py): efficientnet_lite0 (offline weights), 2 classes x 12
training images at 64 px, late body + head training (augmentation and dropout on), 4 epochs, seed 0,
num_workers=0. The victim is slowed (a sleep after each batch) and killed with SIGKILL as soon as the
checkpoint of its 2nd epoch appears; a new process resumes from it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from vt_zoo import solid

from visiontune.train.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
CHILD = HERE / "vt_train_child.py"


def make_dataset(root: Path) -> Path:
    colors = {"red": (135, 110, 110), "blue": (110, 110, 135)}  # close colours, heavy noise: not trivially easy
    for split, n, base in (("train", 12, 0), ("valid", 4, 100)):
        for c, col in colors.items():
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                solid(col, (72, 64), noise=90, seed=base + i).save(root / split / c / f"{c}{i}.jpg", quality=90)
    return root


def child(data: Path, out: Path, *extra: str, slow: float = 0.0) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VT_SLOW_BATCH": str(slow), "OMP_NUM_THREADS": "1", "VISIONTUNE_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(CHILD), str(data), str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, timeout: float = 240) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


def test_kill_minus_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = make_dataset(tmp_path / "data")
    ref = child(data, tmp_path / "ref")  # the uninterrupted run, in parallel with the victim
    victim = child(data, tmp_path / "victim", slow=0.15)
    ckpt = tmp_path / "victim" / "checkpoint.pt"
    t0, state = time.monotonic(), None
    try:
        while True:
            assert victim.poll() is None, victim.communicate()[0].decode(errors="replace")[-3000:]
            assert time.monotonic() - t0 < 240, "no checkpoint of the 2nd epoch after 240 s"
            if ckpt.exists():
                state = load_checkpoint(ckpt)  # written atomically: never half a file
                if state["epoch"] >= 1:
                    break
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    killed_after = load_checkpoint(ckpt)
    assert not killed_after["finished"] and killed_after["epoch"] < 3
    assert not (tmp_path / "victim" / "final.json").exists()

    finish(child(data, tmp_path / "victim", "--resume"))
    finish(ref)
    a = json.loads((tmp_path / "ref" / "final.json").read_text())
    b = json.loads((tmp_path / "victim" / "final.json").read_text())
    assert a["resumed_from"] is None and b["resumed_from"] == killed_after["epoch"]
    assert [r["epoch"] for r in b["logs"]] == [0, 1, 2, 3]
    for ra, rb in zip(a["logs"], b["logs"]):
        for k in ("trn_loss", "val_loss", "accuracy"):
            np.testing.assert_allclose(rb[k], ra[k], rtol=1e-4, atol=1e-6, err_msg=f"epoch {ra['epoch']} {k}")
    # the run really learned something and differs between epochs (a meaningful comparison)
    assert len({round(r["val_loss"], 6) for r in a["logs"]}) == 4
    final = load_checkpoint(ckpt)
    assert final["finished"] and final["epoch"] == 3
