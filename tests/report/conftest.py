"""A synthetic run folder (tiny generated images, fake metrics / lr_find / schedule / predictions)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

CLASSES = ["ants", "bees", "wasps"]


def make_run_folder(root, *, n_val: int = 12, seed: int = 0):
    """Write a complete fake run folder under ``root/run`` (data under ``root/data``); return the run path."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    run = root / "run"
    run.mkdir(parents=True)
    fnames, sizes = [], []
    for i in range(n_val):
        cls = CLASSES[i % len(CLASSES)]
        (data / "valid" / cls).mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        rel = f"valid/{cls}/img{i}.jpg"
        Image.fromarray(arr).save(data / rel, quality=85)
        fnames.append((rel, cls))
        sizes.append([w, h])

    (run / "config.json").write_text(json.dumps({
        "data": str(data), "arch": "efficientnet_lite0", "size": 32, "seed": 0, "bs": 8, "budget": None,
        "fast": True, "gpu_aug": False, "recipe": {"precompute_epochs": 1, "cycle_mult": 2, "weights": None},
    }))
    (run / "classes.json").write_text(json.dumps(CLASSES))
    (run / "preprocessing.json").write_text(json.dumps({
        "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear",
        "crop_pct": 0.875, "classes": CLASSES, "kind": "single",
    }))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "epoch", "lr", "trn_loss", "val_loss", "accuracy", "seconds"])
        for e, phase in enumerate(["head_precompute", "head_aug", "head_aug", "unfrozen", "unfrozen"]):
            w.writerow([phase, e, 0.01, 1.0 / (e + 1), 1.1 / (e + 1), 0.5 + 0.1 * e, 1.5 + e])
    lrs = list(np.logspace(-5, 0, 40))
    losses = [1.0 - 0.5 * math.exp(-((math.log10(lr) + 2.5) ** 2)) + (2.0 if lr > 0.3 else 0.0) for lr in lrs]
    (run / "lr_find.json").write_text(json.dumps([
        {"phase": "head", "lrs": lrs, "losses": losses, "chosen_lr": 3e-3, "rule": "steepest descent / 10"},
        {"phase": "unfrozen", "lrs": lrs, "losses": losses[::-1], "chosen_lr": 1e-4, "rule": "min loss / 10"},
    ]))
    (run / "schedule.json").write_text(json.dumps({
        "head_aug": [0.01 * (1 + math.cos(math.pi * i / 20)) / 2 for i in range(20)],
        "unfrozen": [[1e-4 * (1 + math.cos(math.pi * i / 30)) / 2, 1e-3 * (1 + math.cos(math.pi * i / 30)) / 2]
                     for i in range(30)],
    }))
    with open(run / "val_predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fname", "target", "pred"] + [f"p_{c}" for c in CLASSES])
        for i, (rel, cls) in enumerate(fnames):
            p = rng.dirichlet(np.ones(len(CLASSES)))
            w.writerow([rel, cls, CLASSES[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    (run / "data_summary.json").write_text(json.dumps({
        "class_counts": {c: 10 + 3 * i for i, c in enumerate(CLASSES)}, "sizes": sizes,
    }))
    Image.fromarray(rng.integers(0, 255, (64, 256, 3), dtype=np.uint8)).save(run / "aug_previews.png")
    (run / "progress.json").write_text(json.dumps({
        "status": "done",
        "completed": ["precompute", "lr_find_head", "head_precompute", "head_aug", "unfreeze", "differential_lrs",
                      "lr_find_unfrozen", "sgdr_unfrozen"],
        "skipped": ["lr_find_unfrozen: the budget left (12.0 s) is below the sweep's estimated cost (30.5 s)"],
        "timings": {"setup": 3.2, "precompute": 10.5, "head_precompute": 2.25, "sgdr_unfrozen": 61.0},
        "final": {"accuracy": 0.9412, "tta_accuracy": 0.9542, "val_loss": 0.2031, "tta_views": 4, "seconds": 95.4},
        "elapsed": 95.4,
    }))
    return run


@pytest.fixture
def run_folder(tmp_path):
    return make_run_folder(tmp_path)
