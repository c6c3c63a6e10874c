"""What the recipe writes into its run folder besides progress: the descriptive files (classes,
preprocessing, data summary, augmentation previews), the epochs (``metrics.csv`` / ``.json``), the kept
weights (``best.safetensors``) and the validation predictions (the report: ``run.reporting``). Every write goes through
:class:`~visiontune.run.folder.RunFolder` (atomic, confined), on rank 0 only.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from ..train import distributed
from ..train import weights as train_weights
from ..train.callbacks import Callback
from ..train.weights import weights_bytes
from ..utils.text import spreadsheet_safe
from .folder import RunFolder
from .progress import Progress

__all__ = ["MetricsLog", "SaveBest", "load_weights", "load_weights_from_rank0", "output_names", "preprocessing_dict",
           "save_weights", "write_aug_previews", "write_data_summary", "write_metrics", "write_val_predictions"]


def output_names(data) -> list[str]:
    """Class names, or ``value``/``value0..`` for regression outputs."""
    if data.classes:
        return [str(c) for c in data.classes]
    c = data.c or 1
    return ["value"] if c == 1 else [f"value{i}" for i in range(c)]


def preprocessing_dict(data, kind: str) -> dict:
    t = data.val_tfms
    return {"input_size": int(t.sz), "mean": list(t.mean), "std": list(t.std), "interpolation": t.interpolation,
            "crop_pct": float(t.crop_pct), "classes": output_names(data), "kind": kind}


def write_data_summary(data, folder: RunFolder, max_sizes: int = 2000) -> None:
    if not distributed.is_main_process():  # rank 0 alone writes the run folder
        return
    from ..imaging.limits import ImageLoadError
    from ..imaging.probe import image_header

    ds = data.trn_ds
    counts: dict[str, float] = {}
    y = np.asarray(data.trn_y)
    if data.is_reg:
        counts = {}
    elif data.is_multi:
        counts = {str(c): int(y[:, i].sum()) for i, c in enumerate(data.classes)}
    else:
        counts = {str(c): int((y == i).sum()) for i, c in enumerate(data.classes)}
    sizes = []
    for fn in list(getattr(ds, "fnames", []))[:max_sizes]:
        try:
            h = image_header(Path(data.path) / fn)
            sizes.append([h["width"], h["height"]])
        except ImageLoadError:
            continue
    folder.write_json("data_summary.json", {
        "class_counts": counts, "sizes": sizes, "n_train": len(data.trn_ds), "n_valid": len(data.val_ds),
        "n_test": len(data.test_ds) if data.test_ds else 0, "skipped": [list(s) for s in data.skipped]})


def write_aug_previews(data, folder: RunFolder, n_images: int = 2, n_aug: int = 4) -> None:
    """A grid: ``n_images`` validation images, each shown ``n_aug`` times with the training transforms."""
    if not distributed.is_main_process():  # rank 0 alone writes the run folder
        return
    from ..report.plots import plots

    ds = data.aug_dl.dataset
    names = output_names(data)
    ims, titles = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i in range(min(n_images, len(ds))):
            for _ in range(n_aug):
                x, y = ds[i]
                ims.append(x)
                y = np.asarray(y)
                titles.append(names[int(y)] if y.ndim == 0 and not data.is_reg else "")
    if not ims:
        return
    fig = plots(ims, rows=max(1, min(n_images, len(ds))), titles=titles, figsize=(3 * n_aug, 3 * n_images))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    folder.write_bytes("aug_previews.png", buf.getvalue())


class MetricsLog(Callback):
    """Appends each epoch (with its phase and a run-wide epoch number) to metrics.csv / metrics.json."""

    def __init__(self, folder: RunFolder, progress: Progress, phase: str, metric_names: list[str]):
        self.folder, self.progress, self.phase, self.metric_names = folder, progress, phase, metric_names
        self.rows: list[dict] = []  # this phase's rows (restored on resume)

    def on_epoch_end(self, learner, epoch, logs):
        row = {"phase": self.phase, "epoch": len(self.progress.rows) + len(self.rows), "lr": logs["lr"],
               "trn_loss": logs["trn_loss"], "val_loss": logs["val_loss"],
               **{m: logs.get(m) for m in self.metric_names}, "seconds": logs["seconds"]}
        self.rows.append(row)
        write_metrics(self.folder, self.progress.rows + self.rows)
        return False

    def state_dict(self):
        return {"rows": json.dumps(self.rows)}

    def load_state_dict(self, state):
        self.rows = json.loads(state.get("rows", "[]"))


class SaveBest(Callback):
    """Keep the weights with the lowest validation loss of the whole run in ``best.safetensors``."""

    def __init__(self, folder: RunFolder, progress: Progress, phase: str):
        self.folder, self.progress, self.phase = folder, progress, phase
        best = progress.best or {}
        self.best, self.best_phase, self.best_epoch = best.get("val_loss"), best.get("phase"), best.get("epoch")

    def on_epoch_end(self, learner, epoch, logs):
        v = logs.get("val_loss")
        if v is not None and math.isfinite(v) and (self.best is None or v < self.best):
            self.best, self.best_phase, self.best_epoch = float(v), self.phase, int(epoch)
            save_weights(learner, self.folder, "best.safetensors")
        return False

    def state_dict(self):
        return {"val_loss": self.best, "phase": self.best_phase, "epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_phase, self.best_epoch = state.get("val_loss"), state.get("phase"), state.get("epoch")

    def commit(self) -> None:
        self.progress.best = self.state_dict()


def save_weights(learner, folder: RunFolder, name: str) -> None:
    """Rank 0 writes the learner's weights into the run folder (through RunFolder, atomically)."""
    if distributed.is_main_process():
        folder.write_bytes(name, weights_bytes(learner.model, {"arch": learner.arch.name}))


def load_weights(learner, path: Path) -> None:
    train_weights.load_weights(learner.model, path, learner.device)


def load_weights_from_rank0(learner, path: Path) -> None:
    """Rank 0 reads ``path``; every rank ends up with those weights (one process: just ``load_weights``)."""
    if distributed.is_main_process():
        load_weights(learner, path)
    distributed.broadcast_module_state(learner.model)


def write_metrics(folder: RunFolder, rows: list[dict]) -> None:
    if not distributed.is_main_process():  # rank 0 alone writes the run folder
        return
    if not rows:
        return
    keys = list(rows[0].keys())
    buf = io.StringIO()
    w = _SafeWriter(csv.writer(buf, lineterminator="\n"))
    w.writerow(keys)
    for r in rows:
        w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
    folder.write_text("metrics.csv", buf.getvalue())
    folder.write_json("metrics.json", rows)


class _SafeWriter:
    """A ``csv.writer`` whose text cells are spreadsheet-safe (numbers as formatted strings stay as they are)."""

    def __init__(self, writer):
        self._w = writer

    def writerow(self, row):
        self._w.writerow([spreadsheet_safe(c) if isinstance(c, str) else c for c in row])


def write_val_predictions(folder: RunFolder, data, kind: str, preds, y, tta=None) -> None:
    """fname, target, pred, p_<class>... (the single view, what the exported model reproduces) + tta_pred.

    Every text cell goes through :func:`~visiontune.utils.text.spreadsheet_safe` (a file or class named
    ``=cmd...`` gets a leading ``'``); the report reads it back with ``from_spreadsheet_safe``.
    """
    if not distributed.is_main_process():  # rank 0 alone writes the run folder
        return
    names = output_names(data)
    fnames = list(getattr(data.val_ds, "fnames", [str(i) for i in range(len(y))]))
    buf = io.StringIO()
    w = _SafeWriter(csv.writer(buf, lineterminator="\n"))
    if kind == "single":
        probs = np.exp(np.asarray(preds, np.float64))
        header = ["fname", "target", "pred"] + [f"p_{c}" for c in names] + (["tta_pred", "tta_p_max"] if tta is not None else [])
        w.writerow(header)
        tprobs = np.exp(np.asarray(tta, np.float64)) if tta is not None else None
        for i, fn in enumerate(fnames):
            row = [fn, names[int(y[i])], names[int(probs[i].argmax())]] + [f"{v:.7f}" for v in probs[i]]
            if tprobs is not None:
                row += [names[int(tprobs[i].argmax())], f"{tprobs[i].max():.7f}"]
            w.writerow(row)
    elif kind == "multi":
        probs = np.asarray(preds, np.float64)
        w.writerow(["fname", "target", "pred"] + [f"p_{c}" for c in names])
        for i, fn in enumerate(fnames):
            tgt = " ".join(c for c, t in zip(names, y[i]) if t > 0.5)
            prd = " ".join(c for c, p in zip(names, probs[i]) if p > 0.5)
            w.writerow([fn, tgt, prd] + [f"{v:.7f}" for v in probs[i]])
    else:
        out = np.asarray(preds, np.float64).reshape(len(fnames), -1)
        yy = np.asarray(y, np.float64).reshape(len(fnames), -1)
        w.writerow(["fname"] + [f"target_{c}" for c in names] + [f"pred_{c}" for c in names])
        for i, fn in enumerate(fnames):
            w.writerow([fn] + [f"{v:.7g}" for v in yy[i]] + [f"{v:.7g}" for v in out[i]])
    folder.write_text("val_predictions.csv", buf.getvalue())
