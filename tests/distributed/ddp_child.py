"""The script the distributed tests launch with torchrun (or plain python): precompute, then fine-tune.

    torchrun --standalone --nproc_per_node 2 tests/distributed/ddp_child.py DATA OUT CACHE
    python tests/distributed/ddp_child.py DATA OUT CACHE --resume OUT/finetune.pt

Rank 0 writes ``OUT/results.json``; every rank's numbers are gathered into it so the test can check
that the ranks agree. Nothing else is written here except by the learner itself.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from visiontune import ConvLearner, ImageClassifierData, accuracy, efficientnet_lite0, tfms_from_model, transforms_side_on
from visiontune.train import distributed
from visiontune.train.checkpoint import load_checkpoint
from visiontune.models.digest import weights_digest as state_digest
from visiontune.train.learner import set_seed


def gather_all(obj):
    if not distributed.is_distributed():
        return [obj]
    out = [None] * distributed.world_size()
    dist.all_gather_object(out, obj)
    return out


def make_learner(data_path, out, cache, precompute):
    tfms = tfms_from_model(efficientnet_lite0, 64, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(data_path, bs=8, tfms=tfms, num_workers=0)
    set_seed(0)  # the head's initial weights: the same in the 1- and 2-process runs
    return ConvLearner.pretrained(efficientnet_lite0, data, precompute=precompute, engine="torch", cache_dir=cache,
                                  models_path=Path(out) / "models", mixed_precision=False, verbose=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("cache")
    p.add_argument("--resume", default=None, help="a fine-tuning checkpoint to continue for one more epoch")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    result: dict = {}

    if args.resume:
        learn = make_learner(args.data, out, args.cache, precompute=False)
        learn.unfreeze()
        state = load_checkpoint(args.resume)
        logs = learn.fit([1e-4, 1e-3, 1e-2], 2, seed=1, resume=state)
        result["resumed_epochs"] = [row["epoch"] for row in logs]
        result["resume_accuracy"] = float(accuracy(*learn.predict_with_targs()))
    else:
        # 1. precompute: sharded activations, lr_find, head on activations (replicated), TTA from the cache
        learn = make_learner(args.data, out, args.cache, precompute=True)
        # lr_find's dropout draws come from the global RNG, which torch's DataLoader also draws from when a
        # process group exists (its shared seed): seed it so the 1- and 2-process sweeps are comparable
        set_seed(0)
        lr_sched = learn.lr_find(num_it=8)
        logs = learn.fit(1e-2, 2, seed=0, checkpoint=out / "precompute.pt")
        log_preds, y = learn.TTA(n_aug=2)
        per_rank = gather_all({
            "lr_suggestion": lr_sched.suggestion, "lr_losses": lr_sched.losses, "val": [logs[-1]["val_loss"],
            logs[-1]["accuracy"]], "tta_accuracy": float(accuracy(log_preds, y)), "digest": state_digest(learn.model),
        })
        result["precompute"] = {"n_valid": int(len(learn.predict())), "n_tta": int(len(log_preds)),
                                "val_loss": logs[-1]["val_loss"], "accuracy": logs[-1]["accuracy"],
                                "tta_accuracy": per_rank[0]["tta_accuracy"], "ranks": per_rank}
        learn.save("head")

        # 2. fine-tune on images: DDP, unfrozen, sharded validation and TTA
        learn.precompute = False
        learn.unfreeze()
        logs = learn.fit([1e-4, 1e-3, 1e-2], 1, seed=1, checkpoint=out / "finetune.pt")
        log_preds, y = learn.TTA(n_aug=1)
        per_rank = gather_all({"val": [logs[-1]["val_loss"], logs[-1]["accuracy"]],
                               "tta_accuracy": float(accuracy(log_preds, y)), "digest": state_digest(learn.model)})
        result["finetune"] = {"n_valid": int(len(learn.predict())), "n_tta": int(len(log_preds)),
                              "val_loss": logs[-1]["val_loss"], "accuracy": logs[-1]["accuracy"],
                              "tta_accuracy": per_rank[0]["tta_accuracy"], "ranks": per_rank}
        learn.save("final")

    result["world_size"] = distributed.world_size()
    if distributed.is_main_process():
        name = "resumed.json" if args.resume else "results.json"
        (out / name).write_text(json.dumps(result, indent=1))
    distributed.barrier()
    if distributed.is_distributed():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
