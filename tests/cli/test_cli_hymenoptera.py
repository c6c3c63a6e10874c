"""End to end on real photos: train (reduced budget) -> predict -> export -> ONNX Runtime -> report in Chromium."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vt_cli_helpers import HYMENOPTERA, ROOT, run_cli

pytestmark = pytest.mark.slow


def _val_predictions(run: Path):
    with open(run / "val_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = json.loads((run / "classes.json").read_text())
    probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    return rows, classes, probs


def test_train_writes_the_run_folder(hymenoptera_run):
    run, proc = hymenoptera_run
    for name in ("config.json", "classes.json", "preprocessing.json", "metrics.csv", "metrics.json", "lr_find.json",
                 "schedule.json", "best.safetensors", "checkpoint.pt", "val_predictions.csv", "data_summary.json",
                 "aug_previews.png", "model.onnx", "model.json", "report.html", "progress.json"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert Path(cfg["data"]) == HYMENOPTERA.resolve() and cfg["fast"] is True
    assert json.loads((run / "classes.json").read_text()) == ["ants", "bees"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["phase"] for r in metrics] == ["head_precompute"] * 2 + ["head_aug"] * 3
    lr_find = json.loads((run / "lr_find.json").read_text())
    assert lr_find[0]["phase"] == "head" and 1e-3 <= lr_find[0]["chosen_lr"] <= 1e-1 and lr_find[0]["rule"]
    assert "step 1/8" in proc.stdout and "step 4/8" in proc.stdout  # phase headers
    assert "[ 0 " in proc.stdout  # the per-epoch table
    assert "forward (" not in proc.stdout + proc.stderr  # no progress bars when not a terminal
    progress = json.loads((run / "progress.json").read_text())
    assert progress["status"] == "done"
    assert progress["completed"][:4] == ["precompute", "lr_find_head", "head_precompute", "head_aug"]


def test_validation_accuracy(hymenoptera_run):
    run, _ = hymenoptera_run
    rows, classes, probs = _val_predictions(run)
    assert len(rows) == 153
    final = json.loads((run / "progress.json").read_text())["final"]
    tta_acc = np.mean([r["tta_pred"] == r["target"] for r in rows])
    assert tta_acc == pytest.approx(final["tta_accuracy"])
    acc = np.mean([r["pred"] == r["target"] for r in rows])
    assert acc == pytest.approx(final["accuracy"])
    print(f"hymenoptera --fast: accuracy {acc:.4f}, TTA accuracy {tta_acc:.4f}")
    assert acc >= 0.95 and tta_acc >= 0.95


def test_export_onnx_matches_the_learner(hymenoptera_run, cli_env):
    run, _ = hymenoptera_run
    proc = run_cli(cli_env, "export", run, "--format", "onnx")
    assert "model.onnx" in proc.stdout
    meta = json.loads((run / "model.json").read_text())
    assert meta["format"] == "onnx" and meta["classes"] == ["ants", "bees"] and meta["kind"] == "single"

    import onnxruntime as ort

    from visiontune.infer.exported import ExportedModel

    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {meta["input_name"]: np.zeros((2, 3, meta["input_size"], meta["input_size"]), np.float32)})[0]
    assert out.shape == (2, 2) and np.allclose(out.sum(1), 1, atol=1e-5)

    rows, classes, probs = _val_predictions(run)
    model = ExportedModel.load(run / "model.json")
    got = model.predict_images([HYMENOPTERA / r["fname"] for r in rows])
    same_pred = got.argmax(1) == probs.argmax(1)
    close = np.abs(got - probs).max(1) <= 1e-3
    print(f"ONNX vs learner: {same_pred.mean():.4f} same class, {close.mean():.4f} within 1e-3, "
          f"max diff {np.abs(got - probs).max():.2e}")
    assert same_pred.mean() >= 0.99
    assert (same_pred & close).mean() >= 0.99
    # evaluation runs in fp32 on the same decode and views: the export reproduces the run, not just nearly
    assert np.abs(got - probs).max() <= 1e-4


def test_predict_tta_reproduces_the_runs_tta_accuracy(hymenoptera_run):
    """One TTA: the views the run averaged (model.json's tta_views) are the ones ExportedModel averages, so
    anyone holding the export gets the run's TTA predictions and accuracy."""
    from visiontune.imaging.views import tta_views
    from visiontune.infer.exported import ExportedModel

    run, _ = hymenoptera_run
    rows, classes, _ = _val_predictions(run)
    final = json.loads((run / "progress.json").read_text())["final"]
    meta = json.loads((run / "model.json").read_text())
    assert meta["tta_views"] == list(tta_views(final["tta_views"])) == ["center", "hflip", "zoom_in"]  # --fast: 2
    model = ExportedModel.load(run / "model.json")
    got = model.predict_images([HYMENOPTERA / r["fname"] for r in rows], tta=True)
    want_max = np.array([float(r["tta_p_max"]) for r in rows])
    same = np.array([classes[i] for i in got.argmax(1)]) == np.array([r["tta_pred"] for r in rows])
    print(f"predict --tta vs the run's TTA: {same.mean():.4f} same class, max diff of the top probability "
          f"{np.abs(got.max(1) - want_max).max():.2e}")
    assert same.mean() >= 0.99 and np.abs(got.max(1) - want_max).max() <= 1e-4
    acc = np.mean([classes[i] == r["target"] for i, r in zip(got.argmax(1), rows)])
    assert abs(acc - final["tta_accuracy"]) <= 1 / len(rows) + 1e-9


def test_predict(hymenoptera_run, cli_env, tmp_path):
    run, _ = hymenoptera_run
    rows, classes, probs = _val_predictions(run)
    by_file = {r["fname"]: r for r in rows}
    out = tmp_path / "preds.json"
    run_cli(cli_env, "predict", run, HYMENOPTERA / "val" / "bees", HYMENOPTERA / "val/ants/10308379_1b6c72e180.jpg",
            "--top-k", "2", "--format", "json", "--out", out)
    preds = json.loads(out.read_text())
    assert len(preds) == 1 + len(list((HYMENOPTERA / "val" / "bees").iterdir()))
    for p in preds:
        rel = Path(p["file"]).resolve().relative_to(HYMENOPTERA.resolve()).as_posix()
        assert [t["label"] for t in p["top"]][0] == by_file[rel]["pred"]
        assert abs(sum(t["prob"] for t in p["top"]) - 1) < 1e-4
    csv_out = run_cli(cli_env, "predict", run / "model.json", HYMENOPTERA / "val/ants/10308379_1b6c72e180.jpg",
                      "--top-k", "1", "--tta").stdout.splitlines()
    assert csv_out[0] == "file,label_1,prob_1" and len(csv_out) == 2


def test_report_in_browser(hymenoptera_run, cli_env, tmp_path):
    run, _ = hymenoptera_run
    run_cli(cli_env, "report", run)
    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from test_report_browser import check_in_browser

    html = (run / "report.html").read_text()
    assert "Not available" not in html, [line for line in html.splitlines() if "Not available" in line][:3]
    result = check_in_browser(run / "report.html", run / "report.png", tmp_path)
    assert result["errors"] == []
    assert len(result["images"]) >= 10
    assert all(i["complete"] and i["w"] > 0 for i in result["images"]), result["images"]
    assert (run / "report.png").stat().st_size > 10_000
