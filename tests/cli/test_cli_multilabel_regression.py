"""Multi-label tags and regression targets through the CLI: train from a CSV, then predict.

Generated data: 48 px images with a red disc and/or a blue square (tags ``red``, ``blue``), and
images of one disc whose target is its radius. Both are easy for the pretrained features, so the
floors below are far above what a model that learnt nothing would reach.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from vt_cli_helpers import run_cli

pytestmark = pytest.mark.slow
N = 60
SIZE = 48


def _tags_dataset(root):
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    rows = []
    for i in range(N):
        red, blue = rng.random() < 0.5, rng.random() < 0.5
        if not (red or blue):
            red = True
        img = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(150, 255, 3)))
        draw = ImageDraw.Draw(img)
        if red:
            x, y = rng.integers(2, 20, 2)
            draw.ellipse([x, y, x + 22, y + 22], fill=(220, 20, 20))
        if blue:
            x, y = rng.integers(22, 30, 2)
            draw.rectangle([x, y, x + 16, y + 16], fill=(20, 20, 220))
        img.save(root / "train" / f"im{i:03d}.png")
        rows.append([f"im{i:03d}", " ".join(t for t, on in (("red", red), ("blue", blue)) if on)])
    _write_csv(root / "labels.csv", ["id", "tags"], rows)
    return root, rows


def _disc_dataset(root):
    """A dark disc on a light, noisy background; the target is its radius (as a fraction of 24 px)."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    rows = []
    for i in range(N):
        radius = float(rng.uniform(4, 22))
        arr = np.clip(200 + rng.normal(0, 12, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
        c = SIZE / 2 + rng.uniform(-2, 2, 2)
        ImageDraw.Draw(img).ellipse([c[0] - radius, c[1] - radius, c[0] + radius, c[1] + radius], fill=(40, 60, 90))
        img.save(root / "train" / f"d{i:03d}.png")
        rows.append([f"d{i:03d}", f"{radius / 24:.4f}"])
    _write_csv(root / "labels.csv", ["id", "radius"], rows)
    return root, rows


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_multi_label_csv_trains_and_predicts_tags(cli_env, tmp_path):
    data, rows = _tags_dataset(tmp_path / "tags")
    run = tmp_path / "run-tags"
    run_cli(cli_env, "train", data, "--csv", "labels.csv", "--suffix", ".png", "--multi-label", "--size", "64",
            "--out", run, "--fast", "--quiet")
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done" and json.loads((run / "model.json").read_text())["kind"] == "multi"
    assert sorted(json.loads((run / "classes.json").read_text())) == ["blue", "red"]
    assert progress["final"]["accuracy"] >= 0.85  # per-tag accuracy at threshold 0.5 (chance: ~0.5-0.67)
    with open(run / "val_predictions.csv", newline="") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == int(0.2 * N) and set(preds[0]) >= {"fname", "target", "pred", "p_blue", "p_red"}

    out = tmp_path / "preds.json"
    truth = dict(rows)
    run_cli(cli_env, "predict", run / "model.json", data / "train", "--format", "json", "--top-k", "2", "--out", out)
    result = json.loads(out.read_text())
    assert len(result) == N
    right = 0
    for r in result:
        probs = {t["label"]: t["prob"] for t in r["top"]}
        assert set(probs) == {"red", "blue"} and all(0 <= p <= 1 for p in probs.values())  # sigmoid, not softmax
        predicted = {t for t, p in probs.items() if p > 0.5}
        right += predicted == set(truth[r["file"].rsplit("/", 1)[-1][:-4]].split())
    assert right / N >= 0.8  # both tags right on most images


def test_regression_csv_learns_the_disc_size(cli_env, tmp_path):
    data, rows = _disc_dataset(tmp_path / "discs")
    run = tmp_path / "run-discs"
    run_cli(cli_env, "train", data, "--csv", "labels.csv", "--suffix", ".png", "--regression", "--size", "64",
            "--out", run, "--fast", "--quiet", "--bs", "8")
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done" and json.loads((run / "model.json").read_text())["kind"] == "reg"
    assert progress["final"]["accuracy"] is None  # no accuracy for regression; the loss is the L1 error
    with open(run / "val_predictions.csv", newline="") as f:
        preds = list(csv.DictReader(f))
    target = np.array([float(p["target_value"]) for p in preds])
    predicted = np.array([float(p["pred_value"]) for p in preds])
    train_mean = np.mean([float(v) for _, v in rows])
    baseline = np.abs(target - train_mean).mean()  # what predicting one constant would score
    assert np.abs(target - predicted).mean() < 0.5 * baseline

    out = tmp_path / "preds.csv"
    run_cli(cli_env, "predict", run / "model.json", data / "train", "--format", "csv", "--out", out)
    with open(out, newline="") as f:
        got = {r["file"].rsplit("/", 1)[-1][:-4]: float(r["value"]) for r in csv.DictReader(f)}
    truth = {k: float(v) for k, v in rows}
    err = np.mean([abs(got[k] - truth[k]) for k in truth])
    assert len(got) == N and err < 0.5 * np.mean([abs(v - train_mean) for v in truth.values()])
