"""A small training run for the kill-and-resume test, run as ``python vt_train_child.py DATA OUT [--resume]``.

Trains efficientnet_lite0 (offline weights) on the tiny generated dataset in DATA for 4 epochs with a
fixed seed, writing a checkpoint after every epoch to OUT/checkpoint.pt, and the final logs to
OUT/final.json. ``--resume`` continues from OUT/checkpoint.pt. ``VT_SLOW_BATCH`` (seconds) sleeps
after each batch so the parent can kill the run mid-epoch.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True, warn_only=True)

from visiontune import ConvLearner, ImageClassifierData, tfms_from_model  # noqa: E402
from visiontune.train.callbacks import Callback  # noqa: E402
from visiontune.train.checkpoint import load_checkpoint  # noqa: E402
from visiontune.train.learner import set_seed  # noqa: E402
from visiontune.utils.atomic import atomic_write_json  # noqa: E402

EPOCHS, SEED, LR, SZ = 4, 0, 1e-2, 64


class SlowBatches(Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_batch_end(self, learner, iteration, loss, lr):
        time.sleep(self.seconds)
        return False


def main(argv):
    data_dir, out = Path(argv[0]), Path(argv[1])
    resume = "--resume" in argv
    tfms = tfms_from_model("efficientnet_lite0", SZ, max_zoom=1.1)
    data = ImageClassifierData.from_paths(data_dir, bs=8, tfms=tfms, num_workers=0)
    set_seed(SEED)  # the head's initial weights come from torch's RNG: fit(seed=) alone does not fix them
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=False, device="cpu",
                                   mixed_precision=False, cache_dir=out / "cache", models_path=out / "models",
                                   verbose=False)
    learn.freeze_to(1)  # late body + head train: weights, BN-frozen body, augmentation and dropout all matter
    ckpt = out / "checkpoint.pt"
    state = load_checkpoint(ckpt) if resume else None
    slow = float(os.environ.get("VT_SLOW_BATCH", "0"))
    cbs = [SlowBatches(slow)] if slow else []
    logs = learn.fit([LR / 100, LR / 10, LR], EPOCHS, seed=SEED, checkpoint=ckpt, resume=state, callbacks=cbs)
    atomic_write_json(out / "final.json", {"logs": logs, "resumed_from": None if state is None else state["epoch"]})


if __name__ == "__main__":
    main(sys.argv[1:])
