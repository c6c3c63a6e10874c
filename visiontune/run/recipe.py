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

**Time.** Steps 1-4 cost seconds (a linear head on cached activations); steps 5-8 fine-tune, either
the whole network on the images or (partial fine-tuning) the late layer group and the head on cached
maps of the early group, whichever buys more epochs (:mod:`visiontune.run.fine_tune`). They run only
when their measured cost (one training step, scaled to the sweep, the epochs and the final TTA) fits
``unfrozen_budget`` (by default as long as the head-only run would take in whole) or what ``budget`` leaves; a ``TimeBudget``
callback stops SGDR when the next epoch would not fit. ``fast=True`` runs steps 1-4 only. Every run ends
with TTA, an exported model and a report. The measurements: ``docs/scaling.md``, "The unfrozen budget".

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

import json
import math
import time
from pathlib import Path

from ..train import distributed
from ..train.metrics import metric_name
from ..train.task import data_kind
from ..utils.seed import seed_everything
from . import records
from .config import DEFAULT_UNFROZEN_BUDGET, TrainConfig  # noqa: F401 (TrainConfig: API)
from .finish import RunResult, evaluate_and_export
from .folder import RUN_FILES, RunFolder
from .prepare import LABELS_COPY, build_data, choose_folder, labels_csv_path, read_resumed, recorded_config, short_list
from .progress import STEPS, Progress
from .ranks import log, rank0_reads
from .steps import RECIPE, RunContext, run_steps

__all__ = ["RECIPE", "RUN_FILES", "STEPS", "RunResult", "TrainConfig", "TrainingInterrupted", "train_run"]


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the state is saved; ``run_dir`` says where to resume from."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        super().__init__(f"interrupted; resume with: visiontune train --resume {self.run_dir}")


class Clock:
    def __init__(self, budget: float | None, elapsed_before: float = 0.0):
        self.budget = budget
        self.t0 = time.monotonic() - elapsed_before

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.elapsed()


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
    clock = Clock(config.budget if config is not None and resume is None else None, spent_before)
    distributed.init_distributed()  # under torchrun (WORLD_SIZE > 1) every rank runs the recipe
    folder = rank0_reads(choose_folder, config, resume)
    rank0_reads(_open, folder)  # the lock (rank 0): a second run into the folder stops here
    try:
        if resume is not None:
            cfg, progress = rank0_reads(read_resumed, folder, config)
            if progress.status == "done":
                raise ValueError(f"run {folder.path} already finished; nothing to resume")
            clock.budget = cfg.budget
            clock.t0 -= progress.elapsed
        else:
            # checked again under the lock: a run that ended between the check and the lock is not overwritten
            rank0_reads(choose_folder, config, None)
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


def _run(cfg: TrainConfig, folder: RunFolder, st: Progress, clock: Clock, resumed: bool, spent_before: float,
         started: list) -> RunResult:
    """Set up (data, learner, the run folder's descriptive files), run the steps, evaluate and export."""
    from ..train.learner import Learner

    run_dir = folder.path
    def say(msg: str) -> None:
        log(cfg, msg)

    last_lap = spent_before + (st.elapsed if resumed else 0.0)  # the clock when train_run was called
    last_lap_at_start = last_lap - spent_before  # this session's wall time = clock.elapsed() - this
    if spent_before > 0:
        st.add_lap("startup", spent_before)
    say(f"visiontune: {'resuming' if resumed else 'training'} {cfg.data} -> {run_dir}")

    data = build_data(cfg)
    kind = data_kind(data)
    if resumed:
        before = folder.read_json("classes.json", list) if distributed.is_main_process() else records.output_names(data)
        if before != records.output_names(data):
            raise ValueError(f"the data under {cfg.data} changed since run {run_dir} started: classes "
                             f"{short_list(before)} then, {short_list(records.output_names(data))} now. "
                             "A run resumes only on the data it started with; start a new run")
    say(f"data: {len(data.trn_ds)} train, {len(data.val_ds)} valid"
        + (f", {len(data.test_ds)} test" if data.test_ds is not None else "")
        + f", {len(data.classes) if data.classes else data.c} {'outputs' if kind == 'reg' else 'classes'} ({kind})"
        + (f"; {len(data.skipped)} unreadable file(s) skipped" if data.skipped else ""))

    cache_dir = Path(cfg.cache_dir) / "activations" if cfg.cache_dir else None
    seed_everything(cfg.seed)  # the new head's initial weights
    learn = Learner.pretrained(cfg.arch, data, ps=cfg.ps, weights=cfg.weights, engine=cfg.engine,
                               precompute=False, precompute_aug=0, cache_dir=cache_dir,
                               models_path=run_dir / "models", verbose=cfg.verbose)
    if not resumed:
        replaced = folder.clear_earlier_run()  # --overwrite: the earlier run's files, by name
        if replaced:
            say(f"--overwrite: removed the earlier run's {len(replaced)} file(s) in {run_dir}")
        recorded = recorded_config(cfg, data, kind, run_dir)
        if cfg.csv and not labels_csv_path(cfg).resolve().is_relative_to(Path(cfg.data).resolve()):
            # --resume reads labels only from the data or the run folder: keep a copy of an outside CSV
            folder.write_bytes(LABELS_COPY, labels_csv_path(cfg).read_bytes())
            recorded["csv_copy"] = LABELS_COPY
        folder.write_json("config.json", recorded)
        folder.write_json("classes.json", records.output_names(data))
        folder.write_json("preprocessing.json", records.preprocessing_dict(data, kind))
        records.write_data_summary(data, folder)
        folder.save_progress(st)
    started[0] = True
    metric_names = [metric_name(m) for m in learn.metrics]
    if resumed and st.weights_file:
        records.load_weights_from_rank0(learn, rank0_reads(folder.weights, st.weights_file))

    ctx = RunContext(cfg=cfg, folder=folder, st=st, clock=clock, data=data, learn=learn, kind=kind,
                     last_lap=last_lap, metric_names=metric_names)
    ctx.lap("setup")
    run_steps(ctx)
    model_path, report_path = evaluate_and_export(ctx)
    final = st.final or {}
    result = RunResult(run_dir=run_dir, accuracy=final.get("accuracy"), tta_accuracy=final.get("tta_accuracy"),
                       val_loss=final.get("val_loss"), seconds=clock.elapsed(), steps=list(st.completed),
                       skipped=[str(k) for k in st.skipped], model_path=model_path, report_path=report_path,
                       history=list(st.rows),
                       session_seconds=(clock.elapsed() - last_lap_at_start) if resumed else None)
    say(result.summary())
    return result
