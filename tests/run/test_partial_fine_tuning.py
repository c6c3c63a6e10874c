"""The recipe's partial fine-tuning path end to end: where a full unfrozen epoch does not fit (a slow CPU, here
made so by its measured cost), step 5 plans partial fine-tuning, step 7 states why it sweeps nothing, step 8
trains the late group and the head on cached early-group maps, and the kept model is what the export computes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from visiontune.run import fine_tune
from visiontune.run.recipe import TrainConfig, train_run


CIFAR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "cifar10_6k"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """8 training and 2 validation images of each cifar10_6k class: hard enough that the loss stays above 0."""
    root = tmp_path_factory.mktemp("data") / "cifar80"
    for split, n in (("train", 8), ("valid", 2)):
        for c in sorted(p.name for p in (CIFAR / split).iterdir()):
            (root / split / c).mkdir(parents=True)
            for f in sorted((CIFAR / split / c).iterdir())[:n]:
                shutil.copyfile(f, root / split / c / f.name)
    return root


@pytest.fixture(scope="module")
def partial_run(shapes, tmp_path_factory):
    base = tmp_path_factory.mktemp("partial")
    cfg = TrainConfig(data=str(shapes), out=str(base / "run"), size=64, bs=8, num_workers=0, precompute_aug=0,
                      tta=1, unfrozen_budget=60.0, max_cycles=1, cache_dir=str(base / "cache"), verbose=False)
    with pytest.MonkeyPatch.context() as mp:  # a full unfrozen step as slow as on a 2-core CPU at 224 px
        mp.setattr(fine_tune, "measure_step_cost", lambda learn, n=8: (10.0, 0.01))
        result = train_run(cfg)
    return result, base / "run"


def test_partial_fine_tuning_is_planned_said_and_run(partial_run):
    result, run = partial_run
    progress = json.loads((run / "progress.json").read_text())
    plan = progress["choices"]["unfrozen_plan"]
    assert plan["mode"] == "partial" and plan["cycles"] == 1 and plan["sweep_iters"] == 0
    assert plan["full_epoch_cost"] > plan["epoch_cost"]
    assert plan["setup_cost"] == 0.0  # step 1 computed the activations through the early group's maps and kept them
    skipped = {s["step"]: s["reason"] for s in progress["skipped"]}
    assert "lr_find_unfrozen" in skipped and "partial fine-tuning" in skipped["lr_find_unfrozen"]
    assert "sgdr_unfrozen" in result.steps and "sgdr_unfrozen" not in skipped
    lr = progress["choices"]["lr"]
    assert progress["choices"]["lr_unfrozen"] == pytest.approx(3 * lr)  # the late group at step 2's rate
    assert [r["phase"] for r in progress["rows"]].count("unfrozen") == 1


def test_partial_fine_tuning_changes_the_late_group_only(partial_run):
    """Step 8's weights (checkpoint.pt) against the pretrained body: the early group's unchanged."""
    from visiontune.models import create_body
    from visiontune.train.checkpoint import load_checkpoint

    _, run = partial_run
    pretrained = {f"body.{k}": v for k, v in create_body("efficientnet_lite0").state_dict().items()}
    after = load_checkpoint(run / "checkpoint.pt")["model"]
    late = ("body.model.blocks.5", "body.model.blocks.6", "body.model.conv_head", "body.model.bn2")
    early = [k for k in pretrained if not k.startswith(late)]
    # kept as pretrained too (early_maps.keep_pretrained): the late group's depthwise kernels and its first expansion
    kept = [k for k in pretrained if k.startswith(late) and ("conv_dw" in k or k.startswith("body.model.blocks.5.0.conv_pw.")
                                                            or k.startswith("body.model.blocks.5.0.bn1"))]
    late_convs = [k for k in pretrained if k.startswith(late) and pretrained[k].dim() == 4 and k not in kept]
    assert len(early) > 100 and len(late_convs) >= 10 and len(kept) >= 6
    changed = [k for k in early + kept if not torch.equal(pretrained[k], after[k])]
    assert not changed
    assert all(not torch.equal(pretrained[k], after[k]) for k in late_convs)


def test_the_kept_model_is_what_the_export_computes(partial_run, shapes):
    """The clean view's numbers came from the validation maps (fp32); the export runs the images."""
    import csv

    from visiontune.infer.exported import ExportedModel

    _, run = partial_run
    model = ExportedModel.load(run)
    with open(run / "val_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = model.predict_images([Path(shapes) / r["fname"] for r in rows])
    probs = out if np.allclose(out.sum(1), 1, atol=1e-3) else np.exp(out)
    recorded = np.array([[float(r[f"p_{c}"]) for c in model.classes] for r in rows])
    np.testing.assert_allclose(probs, recorded, atol=2e-3)
    assert [model.classes[i] for i in probs.argmax(1)] == [r["pred"] for r in rows]
