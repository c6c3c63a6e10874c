"""The lesson's 8-step recipe as one function: ``train_run(TrainConfig(data=...)) -> RunResult``.

This is what ``visiontune train`` runs. The notes' "Overview of the Steps", and what each becomes here:

1. **Augmentation on, precompute on.** Training transforms are ``transforms_side_on`` (or
   ``top_down``) with ``max_zoom=1.1``. The body runs once over train / validation (and test) and
   the pooled activations go to the activation cache; ``precompute_aug=K`` (default 2) also caches
   ``K`` augmented views of every training image, so the head sees augmentation at precompute speed.
2. **lr_find** on the precomputed head (``num_it=100``; the data cycles). Rule: the Recorder's
   suggestion (rate at the lowest smoothed loss, divided by 10), clipped to ``[1e-3, 1e-1]``
   (:data:`HEAD_LR_RANGE`; regression: :data:`HEAD_LR_RANGE_REG`, ``[1e-6, 1e-1]``: an L1 loss keeps
   its full gradient near the optimum, summed over the head's 2 x num_features inputs, so a good rate
   is often 1e-5-1e-4, measured on a disc-size regression). ``--lr`` overrides it.
3. **Head on precomputed activations**, ``head_epochs`` (2) epochs at a constant rate.
4. **Head with augmentation**, ``cycle_len=1``, ``aug_epochs`` (3) epochs. With ``precompute_aug > 0``
   this trains on the cached augmented views (each epoch draws one view per image); with
   ``precompute_aug=0`` it sets ``precompute=False`` and runs the frozen body on augmented images.
5. **Unfreeze.**
6. **Differential rates** ``[lr / f**2, lr / f, lr]`` for (early body, late body, head), ``f =
   lr_ratio = 3`` (the notes allow 3-10x; 3 is the lesson-2 choice ``lr/9, lr/3, lr``).
7. **lr_find again**, unfrozen, on a short sweep around the head rate (``lr/100 .. lr*10``, 5-20
   iterations: a full forward+backward is ~100x dearer than a head step on a CPU). Rule: the
   suggestion clipped to ``[lr/10, lr]`` (the fine-tuning rate never exceeds the head's).
8. **SGDR** ``cycle_len=1, cycle_mult=2`` for up to ``max_cycles`` (3: 1+2+4 = 7 epochs), stopped
   early when the validation loss has not improved for ``patience`` (2) epochs.

Throughout, the weights with the lowest validation loss (any phase) are kept in
``best.safetensors`` and are the model that is evaluated (TTA) and exported.

**Time.** Steps 1-4 cost seconds (a linear head on cached activations). Steps 5-8 train the whole
network: on a 2-core CPU one epoch of efficientnet_lite0 on 245 images takes 15-100 s. So the
unfrozen phase runs only when it fits: before step 7 the recipe times one forward+backward step
on 8 images and estimates the cost of the sweep, one epoch and the final TTA. It gets
``unfrozen_budget`` seconds (default :data:`DEFAULT_UNFROZEN_BUDGET` = 30 s), or, with ``budget``
set, whatever the total budget leaves. Why 30 s: on a GPU that is the whole SGDR schedule, and on a
CPU it runs the phase where it is cheap (the 128 px demo: 3 epochs) and skips it where it is not
(hymenoptera at 224 px on 2 cores: ~26 s an epoch, plus a sweep and an unfrozen TTA). Measured with
a 60 s default there: 110 s in all, the unfrozen epoch did not lower the validation loss (0.186 vs
0.179 for the head), TTA accuracy 0.954; with the phase skipped the run takes about half that. A ``TimeBudget`` callback stops SGDR when the next epoch would not fit. ``fast=True``
runs steps 1-4 only. Every run ends with TTA, an exported model and a report.

**Resuming.** Every epoch writes ``checkpoint.pt`` (fit state) and every finished step is recorded
in ``progress.json`` with the weights at that point (``weights_after_<step>.safetensors``). Ctrl-C raises
:class:`TrainingInterrupted` after saving; ``train_run(resume=RUN)`` rebuilds the same data and
learner from ``config.json``, skips finished steps and resumes the interrupted fit from its
checkpoint. Each step starts from its own seed (``seed + step``), so a resumed run ends with the
same numbers as an uninterrupted one (without a time budget, which depends on the clock).

**torchrun.** Under ``torchrun --nproc_per_node N`` every rank runs the recipe (the learner trains
data-parallel); rank 0 alone reads and writes the run folder and prints, and broadcasts what the
others need from it. Choices made from the clock or a measurement (``precompute_aug`` and TTA views
under a budget, the unfrozen plan, SGDR's time-budget stop) are rank 0's. See ``docs/scaling.md``.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import ImageClassifierData, get_cv_idxs
from ..data.sources import read_label_csv
from ..imaging.views import tta_views
from ..train import distributed
from ..train import weights as train_weights
from ..train.callbacks import Callback, EarlyStopping, TimeBudget
from ..train.task import data_kind
from ..train.weights import weights_bytes
from ..transforms import tfms_from_model, transforms_side_on, transforms_top_down
from ..utils.errors import first_line
from ..utils.text import printable, spreadsheet_safe
from ..utils.seed import seed_everything
from .config import DEFAULT_UNFROZEN_BUDGET, TrainConfig  # noqa: F401 (TrainConfig: API)
from .folder import RUN_FILES, RunFolder, confine_to
from .plan import (
    AUG_VIEWS_BELOW_PER_CLASS,
    TTA_SHARE,
    affordable_aug_views,
    affordable_tta_views,
    default_tta_views,
    plan_unfrozen,
)
from .progress import STEPS, Progress, in_words

HEAD_LR_RANGE = (1e-3, 1e-1)
LABELS_COPY = "labels.csv"  # the run's copy of a labels CSV from outside the data folder
HEAD_LR_RANGE_REG = (1e-6, 1e-1)
MIN_UNFROZEN_S = 2.0  # with less budget left, the unfrozen phase is skipped without measuring its cost
EXPORT_RESERVE_S = 4.0  # export + report (measured ~2 s on 2 CPU cores), kept free when a total budget is given
__all__ = ["RUN_FILES", "STEPS", "RunResult", "TrainConfig", "TrainingInterrupted", "export_run", "load_run_model",
           "train_run"]


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the state is saved; ``run_dir`` says where to resume from."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        super().__init__(f"interrupted; resume with: visiontune train --resume {self.run_dir}")


@dataclass
class RunResult:
    run_dir: Path
    accuracy: float | None  # validation accuracy of the kept model (single view)
    tta_accuracy: float | None
    val_loss: float | None
    seconds: float
    steps: list[str]
    skipped: list[str]
    model_path: Path | None
    report_path: Path | None
    history: list[dict] = field(default_factory=list)
    session_seconds: float | None = None  # this call's wall time, when it resumed a run (seconds: the whole run)

    def summary(self) -> str:
        parts = [f"run {self.run_dir}"]
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.4f}")
        if self.tta_accuracy is not None:
            parts.append(f"TTA accuracy {self.tta_accuracy:.4f}")
        if self.val_loss is not None:
            parts.append(f"val_loss {self.val_loss:.4f}")
        if self.session_seconds is not None:
            parts.append(f"wall time {self.session_seconds:.1f} s ({self.seconds:.1f} s for the whole run)")
        else:
            parts.append(f"wall time {self.seconds:.1f} s")
        return ", ".join(parts)


# ------------------------------------------------------------------------------------------------- helpers
def _log(cfg_or_verbose, msg: str) -> None:
    verbose = cfg_or_verbose if isinstance(cfg_or_verbose, bool) else cfg_or_verbose.verbose
    if verbose and distributed.is_main_process():  # under torchrun only rank 0 prints
        # a file or class name in msg cannot send ESC sequences to the terminal (its own lines are kept)
        print("\n".join(printable(line) for line in str(msg).split("\n")), flush=True)


# Under torchrun every rank runs the recipe, but the run folder has one writer and one reader: rank 0.
# Its decisions that depend on the clock or on a measurement are broadcast, so all ranks take the same
# path through the collectives (a rank that took another would wait forever).
def _rank0_writes(fn):
    """``fn`` writes into the run folder: under torchrun it runs on rank 0 only (a no-op returning None elsewhere)."""

    @functools.wraps(fn)
    def on_rank0(*args, **kwargs):
        return fn(*args, **kwargs) if distributed.is_main_process() else None

    return on_rank0


def _rank0_reads(fn, *args):
    """``fn(*args)`` on rank 0; its result (or its exception) on every rank, so the others need no run folder."""
    if not distributed.is_distributed():
        return fn(*args)
    result = error = None
    if distributed.is_main_process():
        try:
            result = fn(*args)
        except Exception as e:  # re-raised on every rank below
            error = e
    result, error = distributed.broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def default_run_dir(data: str) -> Path:
    name = Path(data).resolve().name or "run"
    base = Path("runs") / name
    if not base.exists():
        return base
    i = 2
    while (Path("runs") / f"{name}-{i}").exists():
        i += 1
    return Path("runs") / f"{name}-{i}"


def build_data(cfg: TrainConfig):
    """``ImageClassifierData`` for the config (folders, or a labels CSV with a ``get_cv_idxs`` split)."""
    aug = {"side_on": transforms_side_on, "top_down": transforms_top_down, "none": None}[cfg.aug]
    tfms = tfms_from_model(cfg.arch, cfg.size, aug_tfms=aug, max_zoom=cfg.max_zoom)
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if cfg.csv:
        csv_path = labels_csv_path(cfg)
        if not csv_path.is_file():
            raise FileNotFoundError(f"labels CSV {csv_path} not found")
        n = len(read_label_csv(csv_path, skip_header=True)[0])  # rows as from_csv reads them (pandas)
        # fastai's fold 4 is the last of five at val_pct=0.2; a larger share takes the last fold that fits
        val_idxs = get_cv_idxs(n, cv_idx=min(4, int(1 / cfg.val_pct) - 1), val_pct=cfg.val_pct)
        data = ImageClassifierData.from_csv(root, cfg.folder, csv_path, bs=cfg.bs, tfms=tfms, val_idxs=val_idxs,
                                            suffix=cfg.suffix, test_name=cfg.test_name, continuous=cfg.regression,
                                            num_workers=cfg.num_workers)
        if cfg.multi_label and not data.is_multi:
            raise ValueError(f"--multi-label: {csv_path.name} has one label per row; multi-label rows hold "
                             "space-separated tags")
        if data.is_multi and not cfg.multi_label:  # fastai's from_csv splits labels on spaces: say so
            raise ValueError(f"{csv_path.name}: some labels hold spaces, which make them multi-label tags "
                             f"({', '.join(map(str, data.classes[:4]))}, ...). Pass --multi-label if they are tags; "
                             "for class names with spaces, write them without the space (golden_retriever)")
    else:
        data = ImageClassifierData.from_paths(root, bs=cfg.bs, tfms=tfms, val_name=cfg.val_name,
                                              test_name=cfg.test_name, num_workers=cfg.num_workers)
    if len(data.val_ds) == 0:
        raise ValueError(f"no validation images under {root}")
    return data


def labels_csv_path(cfg: TrainConfig) -> Path:
    """The labels CSV a config names: a path as given (from the working folder), else a name under the data."""
    csv_path = Path(cfg.csv)
    if not csv_path.is_absolute() and not csv_path.exists():
        csv_path = Path(cfg.data) / csv_path
    return csv_path


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
    from ..imaging.decode import ImageLoadError, image_header

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


class _Clock:
    def __init__(self, budget: float | None, elapsed_before: float = 0.0):
        self.budget = budget
        self.t0 = time.monotonic() - elapsed_before

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.elapsed()


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


def _load_weights_from_rank0(learner, path: Path) -> None:
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


def _measure_step_cost(learn, n: int = 8) -> tuple[float, float]:
    """Seconds per image for one forward+backward (unfrozen, train mode) and one forward (eval).

    Weights, BatchNorm statistics and RNG states are restored, so measuring changes nothing.
    """
    from ..train.loop import autocast_context, to_device

    ds = learn.data.fix_dl.dataset
    n = min(n, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    x = learn.data.val_tfms.normalize(torch.stack(list(xs)))
    y = torch.as_tensor(np.stack([np.asarray(v) for v in ys]))
    state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        x = to_device(x, learn.device, learn.channels_last)
        y = y.to(learn.device)

        def train_step(xb, yb):
            learn._set_train_mode()
            with autocast_context(learn.device, learn.amp):
                out = learn.model(xb)
            learn.crit(out.float(), yb).backward()

        train_step(x, y)  # warm-up: the first pass of a batch shape sets up kernels
        t0 = time.perf_counter()
        train_step(x, y)
        c_train = (time.perf_counter() - t0) / n
        learn.model.eval()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast_context(learn.device, learn.amp):
            learn.model(x)
        c_eval = (time.perf_counter() - t0) / n
    for p in learn.model.parameters():
        p.grad = None
    learn.model.load_state_dict(state)
    return c_train, c_eval


# ------------------------------------------------------------------------------------------------- the run
def _image_dirs(cfg: TrainConfig) -> list[Path]:
    """Folders whose files are read as data: a run folder inside one would become a class (or test images).
    A CSV layout reads only the ids it lists, but still lists its test folder."""
    root = Path(cfg.data).resolve()
    listed = (cfg.test_name,) if cfg.csv else ("train", cfg.val_name, "valid", "val", cfg.test_name)
    return [root / n for n in dict.fromkeys(n for n in listed if n and n != ".")]


def _choose_folder(config: TrainConfig | None, resume) -> RunFolder:
    """The run folder, checked (nothing written yet): a new run's --out, or the run to resume."""
    if resume is not None:
        return RunFolder.for_resume(resume)
    if config is None:
        raise ValueError("train_run needs a TrainConfig or resume=RUN")
    config.validate()
    run_dir = Path(config.out) if config.out else default_run_dir(config.data)
    return RunFolder.for_new_run(run_dir, config.data, overwrite=config.overwrite, image_dirs=_image_dirs(config))


def _read_resumed(folder: RunFolder, config: TrainConfig | None) -> tuple[TrainConfig, Progress]:
    """The resumed run's config and progress, read under its lock; every path in them confined."""
    saved = folder.read_json("config.json")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    # a value a run records as null where it was not used (val_name of a CSV layout) takes the default
    kept = {k: v for k, v in saved.items() if k in fields and not (v is None and fields[k].default is not None
                                                                     and k != "data")}
    console = kept.pop("console", None)  # the mode of the session that wrote it (the caller's applies, if given)
    if "verbose" not in kept:  # written since config.json records the console mode
        kept["verbose"], kept["console"] = console != "quiet", "verbose" if console == "verbose" else "normal"
    try:
        cfg = TrainConfig(**kept)
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot resume from {folder.file('config.json')}: {first_line(e)} (damaged or edited?); "
                         "start a new run") from None
    where = str(folder.file("config.json"))
    data = confine_to(cfg.data, [Path(cfg.data)], "data", where) if cfg.data else None
    if cfg.test_name is not None:
        confine_to(cfg.test_name, [data], "test_name", where)
    if cfg.csv:  # the run's copy of a CSV from outside the data folder, else one inside the data folder
        copy = folder.file(LABELS_COPY)
        if saved.get("csv_copy") == LABELS_COPY and copy.is_file() and not copy.is_symlink():
            cfg.csv = str(copy.resolve())
        else:
            p = Path(cfg.csv)
            cfg.csv = str(confine_to(cfg.csv, [data], "csv", where) if not p.is_absolute() else
                          confine_to(cfg.csv, [data, folder.path], "csv", where))
    if config is not None:
        cfg.verbose, cfg.console = config.verbose, config.console
    if config is not None and config.cache_dir:  # the caller's cache (--cache-dir with --resume)
        cfg.cache_dir = config.cache_dir
    elif cfg.cache_dir:  # the recorded cache only where a run may write: inside the run or the data folder
        try:
            confine_to(cfg.cache_dir, [folder.path, data], "cache_dir", where)
        except ValueError:
            _log(cfg, f"note: config.json's cache_dir {cfg.cache_dir} is outside the run and data folders; "
                      "using the default cache (--cache-dir DIR with --resume to choose one)")
            cfg.cache_dir = None
    folder.data = data
    return cfg, folder.read_progress()


def images_per_class(data, kind: str) -> float:
    """Median training images of a class (single label), else training images per output."""
    y = np.asarray(data.trn_y)
    n_out = len(data.classes) if data.classes else int(data.c)
    if kind == "single" and y.ndim == 1 and len(y):
        counts = np.bincount(y.astype(np.int64), minlength=max(n_out, 1))
        return float(np.median(counts[counts > 0]))
    return len(y) / max(n_out, 1)


def _short_list(names: list, n: int = 6) -> str:
    return "[" + ", ".join(map(str, names[:n])) + (f", ... ({len(names)} in all)" if len(names) > n else "") + "]"


def train_run(config: TrainConfig | None = None, *, resume=None, spent_before: float = 0.0) -> RunResult:
    """Run the whole recipe (see the module docstring) and write the run folder; return the result.

    ``resume``: a run folder written by an earlier, interrupted ``train_run``: it continues there
    (``config`` may then carry the console mode and a ``cache_dir``). ``spent_before``: seconds this
    process spent before the call (the CLI passes its start-up: Python, imports); they count against
    ``budget`` and are the run's ``startup`` lap. Ctrl-C raises :class:`TrainingInterrupted` once the
    state is saved. The folder is locked for the run's whole life; a run that fails before training
    leaves no folder behind (see :class:`~visiontune.run.folder.RunFolder`).
    """
    spent_before = max(0.0, float(spent_before))
    clock = _Clock(config.budget if config is not None and resume is None else None, spent_before)
    distributed.init_distributed()  # under torchrun (WORLD_SIZE > 1) every rank runs the recipe
    folder = _rank0_reads(_choose_folder, config, resume)
    _rank0_reads(_open, folder)  # the lock (rank 0): a second run into the folder stops here
    try:
        if resume is not None:
            cfg, progress = _rank0_reads(_read_resumed, folder, config)
            if progress.status == "done":
                raise ValueError(f"run {folder.path} already finished; nothing to resume")
            clock.budget = cfg.budget
            clock.t0 -= progress.elapsed
        else:
            # checked again under the lock: a run that ended between the check and the lock is not overwritten
            _rank0_reads(_choose_folder, config, None)
            cfg, progress = config, Progress()
            folder.data = Path(cfg.data).resolve()
    except BaseException:
        if resume is None:
            folder.abandon()
        folder.close()
        raise
    progress.status = "running"
    started = [False]  # training begun: from then on the folder is a resumable run
    try:
        return _run(cfg, folder, progress, clock, resumed=resume is not None, spent_before=spent_before,
                    started=started)
    except KeyboardInterrupt:
        if not started[0]:
            raise
        _mark_status(folder, "interrupted", clock.elapsed())
        raise TrainingInterrupted(folder.path) from None
    except BaseException:
        if started[0]:
            _mark_status(folder, "failed", clock.elapsed())
        raise
    finally:
        if not started[0] and resume is None:
            folder.abandon()  # nothing of a false start stays (a folder that existed before stays as it was)
        folder.close()


def _open(folder: RunFolder) -> None:
    folder.open()


def _mark_status(folder: RunFolder, status: str, elapsed: float) -> None:
    """Set the status in the progress file on disk, which is only ever written at consistent points.

    (The in-memory state may be half-updated when Ctrl-C lands, so it is not what gets saved.)
    """
    if not distributed.is_main_process():
        return
    try:
        state = json.loads(folder.file("progress.json").read_text())
    except (OSError, ValueError):
        return
    state["status"], state["elapsed"] = status, elapsed
    folder.write_json("progress.json", state)


def _recorded_config(cfg: TrainConfig, data, kind: str, run_dir: Path) -> dict:
    """config.json: the settings as used (the validation folder found, the console mode), not as given."""
    from ..data.sources import _resolve_val_name

    d = cfg.to_dict()
    d.pop("verbose")
    d["console"] = "quiet" if not cfg.verbose else cfg.console
    d["val_name"] = None if cfg.csv else _resolve_val_name(Path(cfg.data), cfg.val_name)
    if cfg.csv:  # the file read, whatever the working folder
        d["csv"] = str(labels_csv_path(cfg).resolve())
    return {**d, "data": str(Path(cfg.data).resolve()), "kind": kind, "run_dir": str(run_dir)}


def _run(cfg: TrainConfig, folder: RunFolder, st: Progress, clock: _Clock, resumed: bool, spent_before: float,
         started: list) -> RunResult:
    from ..train.checkpoint import CheckpointMismatch, load_checkpoint
    from ..train.learner import ConvLearner
    from ..train.metrics import metric_name

    run_dir = folder.path
    say = lambda msg: _log(cfg, msg)
    last_lap = [spent_before + (st.elapsed if resumed else 0.0)]  # the clock when train_run was called
    last_lap_at_start = last_lap[0] - spent_before  # this session's wall time = clock.elapsed() - this
    if spent_before > 0:
        st.add_lap("startup", spent_before)
    say(f"visiontune: {'resuming' if resumed else 'training'} {cfg.data} -> {run_dir}")

    # -- data, learner, the run folder's descriptive files ------------------------------------------------
    data = build_data(cfg)
    kind = data_kind(data)
    if resumed:
        before = folder.read_json("classes.json", list) if distributed.is_main_process() else output_names(data)
        if before != output_names(data):
            raise ValueError(f"the data under {cfg.data} changed since run {run_dir} started: classes "
                             f"{_short_list(before)} then, {_short_list(output_names(data))} now. "
                             "A run resumes only on the data it started with; start a new run")
    say(f"data: {len(data.trn_ds)} train, {len(data.val_ds)} valid"
        + (f", {len(data.test_ds)} test" if data.test_ds is not None else "")
        + f", {len(data.classes) if data.classes else data.c} {'outputs' if kind == 'reg' else 'classes'} ({kind})"
        + (f"; {len(data.skipped)} unreadable file(s) skipped" if data.skipped else ""))

    cache_dir = Path(cfg.cache_dir) / "activations" if cfg.cache_dir else None
    seed_everything(cfg.seed)  # the new head's initial weights
    learn = ConvLearner.pretrained(cfg.arch, data, ps=cfg.ps, weights=cfg.weights, engine=cfg.engine,
                                   precompute=False, precompute_aug=0, cache_dir=cache_dir,
                                   models_path=run_dir / "models", verbose=cfg.verbose)
    if not resumed:
        replaced = folder.clear_earlier_run()  # --overwrite: the earlier run's files, by name
        if replaced:
            say(f"--overwrite: removed the earlier run's {len(replaced)} file(s) in {run_dir}")
        recorded = _recorded_config(cfg, data, kind, run_dir)
        if cfg.csv and not labels_csv_path(cfg).resolve().is_relative_to(Path(cfg.data).resolve()):
            # --resume reads labels only from the data or the run folder: keep a copy of an outside CSV
            folder.write_bytes(LABELS_COPY, labels_csv_path(cfg).read_bytes())
            recorded["csv_copy"] = LABELS_COPY
        folder.write_json("config.json", recorded)
        folder.write_json("classes.json", output_names(data))
        folder.write_json("preprocessing.json", preprocessing_dict(data, kind))
        write_data_summary(data, folder)
        folder.save_progress(st)
    started[0] = True
    metric_names = [metric_name(m) for m in learn.metrics]
    ckpt_path = folder.file("checkpoint.pt")
    if resumed and st.weights_file:
        _load_weights_from_rank0(learn, _rank0_reads(folder.weights, st.weights_file))

    def lap(name: str) -> None:
        """Seconds since the previous lap, under ``timings`` in progress.json: where the run's time went."""
        now = clock.elapsed()
        st.add_lap(name, now - last_lap[0])
        last_lap[0] = now

    def finish(step: str, save_model: bool = True) -> None:
        """Record a finished step (and the weights after it); the only place a step is marked done."""
        old = st.weights_file
        if save_model:
            name = f"weights_after_{step}.safetensors"
            save_weights(learn, folder, name)
            st.weights_file = name
        st.complete(step)
        st.elapsed = clock.elapsed()
        lap(step)
        folder.save_progress(st)
        if save_model and old and old != st.weights_file:
            folder.remove(old)

    def skip(step: str, why: str, quiet: bool = False) -> None:
        """Record a step that is not run, with the reason (``--resume`` treats it as done)."""
        st.skip(step, why)
        if not quiet:
            say(f"skipped: {in_words(step)} ({why})")
        st.elapsed = clock.elapsed()
        lap(step)
        folder.save_progress(st)

    def header(n: int, text: str) -> None:
        say(f"\n== step {n}/8: {text}")

    def run_fit(step: str, phase: str, lrs, n_cycle: int, **kw) -> None:
        """One fit, resumable from checkpoint.pt, logging metrics and keeping the best weights."""
        def read_checkpoint():
            if st.current == step and ckpt_path.is_file():
                try:
                    state = load_checkpoint(ckpt_path)
                except ValueError as e:  # damaged (or not ours): set aside, and redo this step from its start
                    folder.set_aside("checkpoint.pt", str(e), f"redoing step {step} from its start")
                    return None
                return None if state.get("finished") else state  # finished: a fit of an earlier step
            ckpt_path.unlink(missing_ok=True)
            return None

        resume_state = _rank0_reads(read_checkpoint)  # rank 0's checkpoint, on every rank
        st.current = step
        folder.save_progress(st)
        extra_callbacks = kw.pop("callbacks", [])
        for attempt in (0, 1):
            if resume_state is not None:
                say(f"resuming {in_words(phase)} after epoch {resume_state['epoch']}")
            metrics_cb = MetricsLog(folder, st, phase, metric_names)
            best_cb = SaveBest(folder, st, phase)
            callbacks = [metrics_cb, best_cb, *extra_callbacks]
            try:
                learn.fit(lrs, n_cycle, callbacks=callbacks, seed=cfg.seed + STEPS.index(step), checkpoint=ckpt_path,
                          resume=resume_state, **kw)
                break
            except CheckpointMismatch as e:  # loads, but does not fit: nothing was restored; start the step over
                if resume_state is None or attempt:
                    raise
                if distributed.is_main_process():
                    folder.set_aside("checkpoint.pt", f"{ckpt_path} does not fit this run: {e}",
                                     f"redoing step {step} from its start")
                resume_state = None
        st.rows += metrics_cb.rows
        sched = learn.sched
        group_scale = [float(v) / float(np.atleast_1d(lrs)[-1]) for v in np.atleast_1d(lrs)]
        st.schedule[phase] = ([[lr * g for g in group_scale] for lr in sched.lrs] if len(group_scale) > 1
                              else list(sched.lrs))
        folder.write_json("schedule.json", st.schedule)
        best_cb.commit()
        finish(step)

    def lr_find_record(phase: str, sched, chosen: float, rule: str) -> None:
        st.lr_find.append({"phase": phase, "lrs": list(sched.lrs), "losses": list(sched.losses),
                           "suggestion": sched.suggestion, "chosen_lr": chosen, "rule": rule})
        folder.write_json("lr_find.json", st.lr_find)

    # -- 1. augmentation on, precompute on ---------------------------------------------------------------
    lap("setup")
    header(1, "augmentation on, precompute activations")
    t0 = t_step = time.perf_counter()
    learn.activations("train")
    t_train_pass = time.perf_counter() - t0
    t0 = time.perf_counter()
    learn.activations("valid")
    t_valid_pass = time.perf_counter() - t0
    if data.test_ds is not None:
        learn.activations("test")
    per_class = images_per_class(data, kind)
    k = cfg.resolved_precompute_aug(per_class)
    auto_views = cfg.precompute_aug is None and not cfg.fast
    if auto_views and "precompute_aug" not in st.choices:
        say(f"{per_class:.0f} training images a class: " + (
            f"{k} augmented view(s) of each (they pay below {AUG_VIEWS_BELOW_PER_CLASS} a class)" if k else
            f"no augmented views (from {AUG_VIEWS_BELOW_PER_CLASS} a class they cost a pass each and gained under a point in our measurements; "
            "--precompute-aug K to cache them)"))
    if "precompute_aug" in st.choices:
        k = st.choices["precompute_aug"]
    elif cfg.budget is not None and k > 0:
        affordable = affordable_aug_views(k, clock.left(), t_train_pass)
        if affordable < k:
            say(f"budget: caching {max(affordable, 0)} augmented views instead of {k} "
                f"(one pass over the training images took {t_train_pass:.1f} s)")
            k = max(affordable, 0)
    k, t_train_pass = distributed.broadcast_object((k, t_train_pass))  # rank 0's clock decides for all
    st.choices["precompute_aug"] = k
    st.choices["seconds_per_train_pass"] = t_train_pass
    st.choices.setdefault("seconds_per_valid_pass", t_valid_pass)  # a resumed run's cache makes it ~0
    learn.precompute_aug = k
    learn.precompute = True
    say(f"precomputed activations ({k} augmented view(s) of each training image) in "
        f"{time.perf_counter() - t_step:.1f} s")
    if not st.done("precompute"):
        finish("precompute", save_model=False)

    # -- 2. lr_find on the head ---------------------------------------------------------------------------
    header(2, "lr_find on the precomputed head")
    if not st.done("lr_find_head"):
        if cfg.lr is not None:
            lr, rule = float(cfg.lr), "given with --lr"
        else:
            seed_everything(cfg.seed + 1)
            sched = learn.lr_find(num_it=100)
            lo, hi = HEAD_LR_RANGE_REG if kind == "reg" else HEAD_LR_RANGE
            sugg = sched.suggestion if sched.suggestion is not None else 1e-2
            lr = float(np.clip(sugg, lo, hi))
            rule = f"{sched.rule}; clipped to [{lo:g}, {hi:g}]"
            lr_find_record("head", sched, lr, rule)
        st.choices["lr"] = lr
        st.choices["lr_rule"] = rule
        finish("lr_find_head", save_model=False)
    lr = st.choices["lr"]
    say(f"learning rate {lr:.3g} ({st.choices['lr_rule']})")

    # -- 3. head on precomputed activations ---------------------------------------------------------------
    header(3, f"train the head on precomputed activations ({cfg.head_epochs} epochs)")
    if not st.done("head_precompute"):
        if cfg.head_epochs > 0:
            run_fit("head_precompute", "head_precompute", lr, cfg.head_epochs)
        else:
            skip("head_precompute", "head_epochs=0")

    # -- 4. head with augmentation, cycle_len=1 -----------------------------------------------------------
    # No augmented views: the clean activations, unless K=0 was asked for explicitly (no --fast, no
    # --budget): then the notes' step 4, the frozen body on augmented images (slow on a CPU).
    body_on_augmented = k == 0 and cfg.precompute_aug == 0 and cfg.budget is None and not cfg.fast
    if k == 0 and not body_on_augmented:
        if cfg.fast:
            why = "--fast"
        elif cfg.precompute_aug == 0:
            why = "precompute_aug=0"
        elif cfg.resolved_precompute_aug(per_class) == 0:
            why = f"{per_class:.0f} images a class"
        else:  # views were wanted, but the budget had no time for them
            why = "--budget"
        header(4, f"train the head, cycle_len=1 ({cfg.aug_epochs} epochs; {why}: clean activations, no augmented pass)")
    else:
        header(4, f"train the head with augmentation, cycle_len=1 ({cfg.aug_epochs} epochs)")
    if not st.done("head_aug"):
        if cfg.aug_epochs > 0:
            if body_on_augmented:
                learn.precompute = False
            run_fit("head_aug", "head_aug", lr, cfg.aug_epochs, cycle_len=1)
        else:
            skip("head_aug", "aug_epochs=0")
    learn.precompute = True

    # -- 5-8. the unfrozen phase, when it fits -------------------------------------------------------------
    n_val, n_trn = len(data.val_ds), len(data.trn_ds)
    reserve = EXPORT_RESERVE_S if cfg.budget is not None else 0.0
    unfrozen_todo = [s for s in STEPS[4:] if not st.done(s)]
    if cfg.fast:
        if unfrozen_todo:
            say("skipped: steps 5-8, the unfrozen phase (--fast: precompute only)")
        for s in unfrozen_todo:
            skip(s, "--fast (precompute only)", quiet=True)
    elif unfrozen_todo:
        header(5, "unfreeze")
        plan = st.choices.get("unfrozen_plan")
        # with a budget already spent, not even the cost measurement (~1.5 s on 2 CPU cores) is worth running
        spent = distributed.broadcast_object(cfg.budget is not None and clock.left() - reserve < MIN_UNFROZEN_S)
        if plan is None and spent:
            plan = {"cycles": 0, "epochs": 0, "available": clock.left() - reserve, "not_measured": True}
            st.choices["unfrozen_plan"] = plan
            folder.save_progress(st)
        if plan is None:
            learn.precompute = False
            learn.unfreeze()
            # seconds per image for the whole process group: under torchrun each rank takes 1/world of the
            # images (training, validation, TTA); every rank measures at once, as it will train
            world = distributed.world_size()
            c_train, c_eval = (c / world for c in _measure_step_cost(learn))
            plan = plan_unfrozen(n_trn=n_trn, n_val=n_val, bs=cfg.bs, iters_per_epoch=len(data.trn_dl),
                                 seconds_per_image_train=c_train, seconds_per_image_eval=c_eval,
                                 available=(clock.left() - reserve) if cfg.budget is not None else cfg.unfrozen_budget,
                                 n_tta=cfg.resolved_tta(), max_cycles=cfg.max_cycles, world_size=world)
            plan = distributed.broadcast_object(plan)  # rank 0's measurement and clock decide for all ranks
            st.choices["unfrozen_plan"] = plan
            folder.save_progress(st)
        if not plan.get("not_measured"):
            say(f"unfrozen phase: ~{plan['epoch_cost']:.1f} s per epoch, {plan['available']:.0f} s available "
                f"-> {plan['epochs']} epoch(s) in {plan['cycles']} SGDR cycle(s)")
        if plan["cycles"] == 0:
            if plan.get("not_measured"):
                why = (f"{max(plan['available'], 0):.1f} s of the --budget left before the export; keeping the "
                       "head-only model")
            else:
                why = (f"one unfrozen epoch costs ~{plan['epoch_cost']:.0f} s (+ ~{plan['sweep_cost']:.0f} s lr_find, "
                       f"~{plan['tta_cost']:.0f} s TTA) and {max(plan['available'], 0):.0f} s are available "
                       f"({'--budget' if cfg.budget is not None else 'unfrozen_budget'}); keeping the head-only model")
            learn.freeze()
            learn.precompute = True
            say(f"skipped: steps 5-8, the unfrozen phase ({why})")
            for s in unfrozen_todo:
                skip(s, why, quiet=True)
        else:
            learn.precompute = False
            learn.unfreeze()
            if not st.done("unfreeze"):
                finish("unfreeze", save_model=False)
            header(6, f"differential learning rates (each group {cfg.lr_ratio:g}x lower than the next)")
            f = cfg.lr_ratio
            if not st.done("differential_lrs"):
                st.choices["group_ratio"] = f
                finish("differential_lrs", save_model=False)
            header(7, f"lr_find again, unfrozen ({plan['sweep_iters']} iterations)")
            if not st.done("lr_find_unfrozen"):
                seed_everything(cfg.seed + STEPS.index("lr_find_unfrozen"))
                ratios = np.array([1 / f**2, 1 / f, 1.0])
                sched = learn.lr_find(start_lr=ratios * lr / 100, end_lr=ratios * lr * 10, num_it=plan["sweep_iters"])
                sugg = sched.suggestion if sched.suggestion is not None else lr
                lr2 = float(np.clip(sugg, lr / 10, lr))
                lr_find_record("unfrozen", sched, lr2, f"{sched.rule}; clipped to [lr/10, lr] = [{lr / 10:.3g}, {lr:.3g}]")
                st.choices["lr_unfrozen"] = lr2
                finish("lr_find_unfrozen", save_model=False)
            lr2 = st.choices["lr_unfrozen"]
            lrs = np.array([lr2 / f**2, lr2 / f, lr2])
            header(8, f"SGDR cycle_len=1 cycle_mult=2, {plan['cycles']} cycle(s), rates {', '.join(f'{v:.2g}' for v in lrs)}")
            if not st.done("sgdr_unfrozen"):
                cbs = [EarlyStopping(patience=cfg.patience)] if cfg.patience > 0 else []
                if cfg.budget is not None:
                    cbs.append(TimeBudget(time.monotonic() + clock.left() - reserve - plan["tta_cost"]))
                else:
                    cbs.append(TimeBudget(time.monotonic() + 1.5 * plan["available"] - plan["tta_cost"]))
                run_fit("sgdr_unfrozen", "unfrozen", lrs, plan["cycles"], cycle_len=1, cycle_mult=2, callbacks=cbs)

    # -- the kept model: TTA, predictions, export, report ---------------------------------------------------
    best = st.best or {}
    best_path = folder.file("best.safetensors")
    if _rank0_reads(best_path.is_file):
        _load_weights_from_rank0(learn, best_path)  # every rank evaluates rank 0's kept weights
    if best.get("phase") in (None, "head_precompute", "head_aug"):
        learn.freeze()  # the body is the pretrained one: its activations come from the cache
        learn.precompute = True
    say(f"\nkept the weights with the lowest validation loss ({best.get('val_loss', float('nan')):.4f}, "
        f"{in_words(best.get('phase'))}, epoch {best.get('epoch')})")
    n_tta = cfg.resolved_tta()
    if cfg.tta is None and n_tta > 0:  # not given: the views that cost ~10% of the run (at least the flip)
        if learn.body_frozen:
            per_view = float(st.choices.get("seconds_per_valid_pass", 0.0))
        else:
            per_view = n_val * float((st.choices.get("unfrozen_plan") or {}).get("seconds_per_image_eval", 0.0))
        chosen = default_tta_views(n_tta, per_view, clock.elapsed())
        if chosen < n_tta:
            say(f"TTA: {chosen} augmented view(s) of {n_tta} (~{per_view:.1f} s a view; more cost over "
                f"{TTA_SHARE:.0%} of the run; --tta N to choose)")
        n_tta = chosen
    if cfg.budget is not None:
        # each TTA view is one forward pass over the validation images (the clean view is cached already)
        if learn.body_frozen:
            per_image = st.choices.get("seconds_per_train_pass", 0.0) / max(n_trn, 1)
        else:
            per_image = (st.choices.get("unfrozen_plan") or {}).get("seconds_per_image_eval", 0.0)
        affordable = affordable_tta_views(n_tta, clock.left() - reserve, n_val, per_image)
        if affordable < n_tta:
            say(f"budget: {affordable} TTA view(s) instead of {n_tta} ({n_val * per_image:.1f} s a view, "
                f"{max(clock.left() - reserve, 0):.1f} s left before export)")
            n_tta = affordable
        n_tta = distributed.broadcast_object(n_tta)  # rank 0's clock decides for all ranks
    preds, y = learn.predict_with_targs()
    tta = learn.TTA(n_aug=n_tta)[0] if n_tta > 0 else None
    acc = tta_acc = None
    from ..train.metrics import accuracy, accuracy_multi

    if kind == "single":
        acc, tta_acc = accuracy(preds, y), (accuracy(tta, y) if tta is not None else None)
    elif kind == "multi":
        acc, tta_acc = accuracy_multi(preds, y), (accuracy_multi(tta, y) if tta is not None else None)
    val_loss = float(learn.crit(torch.from_numpy(np.asarray(preds, np.float32)), torch.from_numpy(np.asarray(y))))
    write_val_predictions(folder, data, kind, preds, y, tta)
    lap("evaluate_tta")
    say(f"validation: accuracy {acc if acc is None else f'{acc:.4f}'}, TTA ({n_tta} view(s) + clean) accuracy "
        f"{tta_acc if tta_acc is None else f'{tta_acc:.4f}'}, val_loss {val_loss:.4f}")

    from ..infer.export import export_model

    model_path = _rank0_writes(export_model)(learn.model, run_dir, preprocessing=preprocessing_dict(data, kind),
                                             classes=output_names(data), kind=kind, fmt=cfg.export_format,
                                             tta_views=tta_views(n_tta))  # predict --tta: the same views
    if model_path is not None:
        folder.note_written(Path(model_path).name)
        folder.note_written("model.json")
    say(f"exported {model_path}")
    lap("export")
    st.final = {"accuracy": acc, "tta_accuracy": tta_acc, "val_loss": val_loss, "tta_views": n_tta,
                "seconds": clock.elapsed()}
    st.status = "done"
    st.elapsed = clock.elapsed()
    folder.save_progress(st)
    report_path = None
    try:  # the previews are the report's: drawn here, after training, not on the training clock
        write_aug_previews(data, folder)
    except Exception as e:  # a preview is never worth failing a run for
        say(f"note: augmentation previews not written ({type(e).__name__}: {e})")
    try:
        report_path = _rank0_writes(_write_report)(folder, st, lap)
        say(f"report {report_path}")
    except Exception as e:  # the model is trained and exported; a report failure is a note, not a failure
        say(f"note: report not written ({type(e).__name__}: {e})")
        lap("report")
    for f in sorted(run_dir.glob("weights_after_*.safetensors")) if distributed.is_main_process() else []:
        folder.remove(f.name)  # only names of this run's own weights files (run.progress.WEIGHTS_FILE)
    st.weights_file = None  # the kept model is best.safetensors
    st.elapsed = clock.elapsed()
    folder.save_progress(st)
    model_path, report_path = distributed.broadcast_object((model_path, report_path))  # rank 0's files
    result = RunResult(run_dir=run_dir, accuracy=acc, tta_accuracy=tta_acc, val_loss=val_loss,
                       seconds=clock.elapsed(), steps=list(st.completed), skipped=[str(k) for k in st.skipped],
                       model_path=model_path, report_path=report_path, history=list(st.rows),
                       session_seconds=(clock.elapsed() - last_lap_at_start) if resumed else None)
    say(result.summary())
    return result


def _write_report(folder: RunFolder, st: Progress, lap) -> Path:
    """report.html, whose Timing table includes the report's own lap (rendered, timed, then filled in)."""
    from ..report import render_report, timing_table
    from .reporting import report_records

    html = render_report(report_records(folder))
    before = timing_table(json.loads(json.dumps(st.to_dict())))
    lap("report")
    after = timing_table(json.loads(json.dumps(st.to_dict())))
    folder.write_text("report.html", html.replace(before, after, 1))
    return folder.file("report.html")


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


# ------------------------------------------------------------------------------------------------- run folder -> model
def _read_run_json(path: Path, expect: type = dict):
    from .folder import _read_json

    return _read_json(path, expect)


def load_run_model(run_dir, weights: str = "best.safetensors"):
    """The trained ``nn.Sequential(body, pool, head)`` of a run folder, rebuilt without its data.

    Returns (model, preprocessing dict, classes, kind).
    """
    from collections import OrderedDict

    from torch import nn

    from ..models import ConcatPool, create_body, create_head, get_arch

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    for name in ("config.json", "preprocessing.json", weights):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} has no {name}: is it a finished visiontune train run?")
    cfg = _read_run_json(run_dir / "config.json")
    pre = _read_run_json(run_dir / "preprocessing.json")
    if not isinstance(pre.get("classes"), list) or not pre["classes"] or "arch" not in cfg:
        raise ValueError(f"{run_dir}: preprocessing.json has no class list or config.json no arch (damaged?); "
                         "train the run again")
    classes, kind = list(pre["classes"]), pre.get("kind", "single")
    body = create_body(get_arch(cfg["arch"]), weights=None, pretrained=False)
    head = create_head(2 * body.num_features, len(classes), ps=cfg.get("ps"), xtra_fc=None, kind=kind)
    model = nn.Sequential(OrderedDict(body=body, pool=ConcatPool(), head=head))
    # damaged, non-finite (NaN / Inf) or mismatching weights: one line naming the file (and the tensor)
    train_weights.load_state_checked(model, train_weights.read_weights(run_dir / weights, "cpu"), run_dir / weights)
    return model.eval(), pre, classes, kind


def export_run(run_dir, fmt: str = "onnx", out_dir=None) -> Path:
    """Export a run's kept weights (``best.safetensors``) as ONNX or TorchScript + ``model.json``."""
    from ..infer.export import export_model

    model, pre, classes, kind = load_run_model(run_dir)
    try:  # the views the run's TTA accuracy was measured with, so predict --tta reproduces it
        n_views = int(((_read_run_json(Path(run_dir) / "progress.json").get("final") or {}).get("tta_views")))
        views = tta_views(n_views) if n_views > 0 else None
    except (ValueError, TypeError, OSError):
        views = None  # an older or unfinished run: predict --tta averages every view
    return export_model(model, Path(out_dir) if out_dir else Path(run_dir), preprocessing=pre, classes=classes,
                        kind=kind, fmt=fmt, tta_views=views)
