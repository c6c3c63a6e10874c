"""The notes' eight steps, each a plain function of the run's :class:`RunContext`, in the list :data:`RECIPE`
that :func:`visiontune.run.recipe.train_run` walks.

A step's ``run`` does the work and returns :data:`DONE` or a :class:`Skip` with the reason; the loop alone
marks it done or skipped in ``progress.json`` (and saves the weights after it, where the step changes them).
On ``--resume`` a step already done or skipped is not run again; its ``restore`` (where it has one) puts
the learner back in the state the step left it in (activations in memory, body unfrozen, ...).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..train import distributed
from ..train.callbacks import EarlyStopping, TimeBudget
from ..train.checkpoint import CheckpointMismatch, load_checkpoint
from ..utils.seed import seed_everything
from . import fine_tune, records
from .config import TrainConfig
from .folder import RunFolder
from .plan import AUG_VIEWS_BELOW_PER_CLASS, affordable_aug_views
from .prepare import images_per_class
from .progress import STEPS, Progress, in_words
from .ranks import log, rank0_reads

HEAD_LR_RANGE = (1e-3, 1e-1)
HEAD_LR_RANGE_REG = (1e-6, 1e-1)
MIN_UNFROZEN_S = 2.0  # with less left (--budget) or given (--unfrozen-budget), steps 5-8 are skipped unmeasured
EXPORT_RESERVE_S = 4.0  # export + report (measured ~2 s on 2 CPU cores), kept free when a total budget is given

DONE = "done"


@dataclass(frozen=True)
class Skip:
    """A step not run, and why (``quiet``: the reason was already said for a group of steps)."""

    reason: str
    quiet: bool = False


@dataclass
class RunContext:
    """What the steps share: the config, the folder, the progress record, the clock, the data and learner."""

    cfg: TrainConfig
    folder: RunFolder
    st: Progress
    clock: object  # recipe.Clock: elapsed(), left()
    data: object
    learn: object
    kind: str
    last_lap: float  # the clock at the previous lap
    metric_names: list[str] = field(default_factory=list)
    unfrozen_skip: str | None = None  # why steps 5-8 are not run (set by step 5)

    def say(self, msg: str) -> None:
        log(self.cfg, msg)

    @property
    def reserve(self) -> float:
        return EXPORT_RESERVE_S if self.cfg.budget is not None else 0.0

    def lap(self, name: str) -> None:
        """Seconds since the previous lap, under ``timings`` in progress.json: where the run's time went."""
        now = self.clock.elapsed()
        self.st.add_lap(name, now - self.last_lap)
        self.last_lap = now

    def finish(self, step: str, save_model: bool = True) -> None:
        """Record a finished step (and the weights after it); the only place a step is marked done."""
        st, old = self.st, self.st.weights_file
        if save_model:
            name = f"weights_after_{step}.safetensors"
            records.save_weights(self.learn, self.folder, name)
            st.weights_file = name
        st.complete(step)
        st.elapsed = self.clock.elapsed()
        self.lap(step)
        self.folder.save_progress(st)
        if save_model and old and old != st.weights_file:
            self.folder.remove(old)

    def skip(self, step: str, why: str, quiet: bool = False) -> None:
        """Record a step that is not run, with the reason (``--resume`` treats it as done)."""
        self.st.skip(step, why)
        if not quiet:
            self.say(f"skipped: {in_words(step)} ({why})")
        self.st.elapsed = self.clock.elapsed()
        self.lap(step)
        self.folder.save_progress(self.st)

    def run_fit(self, step: str, phase: str, lrs, n_cycle: int, **kw) -> None:
        """One fit, resumable from checkpoint.pt, logging metrics and keeping the best weights."""
        folder, st, learn = self.folder, self.st, self.learn
        ckpt_path = folder.file("checkpoint.pt")

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

        resume_state = rank0_reads(read_checkpoint)  # rank 0's checkpoint, on every rank
        st.current = step
        folder.save_progress(st)
        extra_callbacks = kw.pop("callbacks", [])
        for attempt in (0, 1):
            if resume_state is not None:
                self.say(f"resuming {in_words(phase)} after epoch {resume_state['epoch']}")
            metrics_cb = records.MetricsLog(folder, st, phase, self.metric_names)
            best_cb = records.SaveBest(folder, st, phase)
            callbacks = [metrics_cb, best_cb, *extra_callbacks]
            try:
                learn.fit(lrs, n_cycle, callbacks=callbacks, seed=self.cfg.seed + STEPS.index(step),
                          checkpoint=ckpt_path, resume=resume_state, **kw)
                break
            except CheckpointMismatch as e:  # loads, but does not fit: nothing was restored; start the step over
                if resume_state is None or attempt:
                    raise
                if distributed.is_main_process():
                    folder.set_aside("checkpoint.pt", f"{ckpt_path} does not fit this run: {e}",
                                     f"redoing step {step} from its start")
                resume_state = None
        st.rows += metrics_cb.rows
        group_scale = [float(v) / float(np.atleast_1d(lrs)[-1]) for v in np.atleast_1d(lrs)]
        st.schedule[phase] = ([[lr * g for g in group_scale] for lr in learn.sched.lrs] if len(group_scale) > 1
                              else list(learn.sched.lrs))
        folder.write_json("schedule.json", st.schedule)
        best_cb.commit()

    def lr_find_record(self, phase: str, sched, chosen: float, rule: str) -> None:
        self.st.lr_find.append({"phase": phase, "lrs": list(sched.lrs), "losses": list(sched.losses),
                                "suggestion": sched.suggestion, "chosen_lr": chosen, "rule": rule})
        self.folder.write_json("lr_find.json", self.st.lr_find)


# ------------------------------------------------------------------------------------------------- 1-4: the head
def precompute(ctx: RunContext):
    """1. Augmentation on, precompute on: the body's activations of every split (and K augmented views)."""
    cfg, learn, data, st = ctx.cfg, ctx.learn, ctx.data, ctx.st
    t0 = t_step = time.perf_counter()
    learn.keep_early_maps = fine_tune.keep_maps(ctx)  # the early group's maps, kept for partial fine-tuning
    learn.activations("train")
    t_train_pass = time.perf_counter() - t0
    t0 = time.perf_counter()
    learn.activations("valid")
    t_valid_pass = time.perf_counter() - t0
    if data.test_ds is not None:
        learn.activations("test")
    per_class = images_per_class(data, ctx.kind)
    k = cfg.resolved_precompute_aug(per_class)
    if cfg.precompute_aug is None and not cfg.fast and "precompute_aug" not in st.choices:
        ctx.say(f"{per_class:.0f} training images a class: " + (
            f"{k} augmented view(s) of each (they pay below {AUG_VIEWS_BELOW_PER_CLASS} a class)" if k else
            f"no augmented views (from {AUG_VIEWS_BELOW_PER_CLASS} a class they cost a pass each and gained under "
            "a point in our measurements; --precompute-aug K to cache them)"))
    if "precompute_aug" in st.choices:
        k = st.choices["precompute_aug"]
    elif cfg.budget is not None and k > 0:
        affordable = affordable_aug_views(k, ctx.clock.left(), t_train_pass)
        if affordable < k:
            ctx.say(f"budget: caching {max(affordable, 0)} augmented views instead of {k} "
                    f"(one pass over the training images took {t_train_pass:.1f} s)")
            k = max(affordable, 0)
    k, t_train_pass = distributed.broadcast_object((k, t_train_pass))  # rank 0's clock decides for all
    st.choices["precompute_aug"] = k
    st.choices["seconds_per_train_pass"] = t_train_pass
    st.choices.setdefault("seconds_per_valid_pass", t_valid_pass)  # a resumed run's cache makes it ~0
    learn.precompute_aug = k
    learn.precompute = True
    ctx.say(f"precomputed activations ({k} augmented view(s) of each training image) in "
            f"{time.perf_counter() - t_step:.1f} s")
    return DONE


def lr_find_head(ctx: RunContext):
    """2. lr_find on the precomputed head: the suggestion, clipped to a range (or ``--lr``)."""
    cfg, st = ctx.cfg, ctx.st
    if cfg.lr is not None:
        lr, rule = float(cfg.lr), "given with --lr"
    else:
        seed_everything(cfg.seed + 1)
        sched = ctx.learn.lr_find(num_it=100)
        lo, hi = HEAD_LR_RANGE_REG if ctx.kind == "reg" else HEAD_LR_RANGE
        sugg = sched.suggestion if sched.suggestion is not None else 1e-2
        lr = float(np.clip(sugg, lo, hi))
        rule = f"{sched.rule}; clipped to [{lo:g}, {hi:g}]"
        ctx.lr_find_record("head", sched, lr, rule)
    st.choices["lr"] = lr
    st.choices["lr_rule"] = rule
    say_lr(ctx)
    return DONE


def say_lr(ctx: RunContext) -> None:
    ctx.say(f"learning rate {ctx.st.choices['lr']:.3g} ({ctx.st.choices['lr_rule']})")


def head_precompute(ctx: RunContext):
    """3. The head on precomputed activations, ``head_epochs`` epochs at a constant rate."""
    if ctx.cfg.head_epochs <= 0:
        return Skip("head_epochs=0")
    ctx.run_fit("head_precompute", "head_precompute", ctx.st.choices["lr"], ctx.cfg.head_epochs)
    return DONE


def _body_on_augmented(ctx: RunContext) -> bool:
    """No augmented views because ``--precompute-aug 0`` was asked for explicitly (no --fast, no --budget):
    then step 4 is the notes' own, the frozen body on augmented images (slow on a CPU)."""
    cfg = ctx.cfg
    return ctx.st.choices.get("precompute_aug") == 0 and cfg.precompute_aug == 0 and cfg.budget is None and not cfg.fast


def head_aug_title(ctx: RunContext) -> str:
    cfg, k, per_class = ctx.cfg, ctx.st.choices.get("precompute_aug", 0), images_per_class(ctx.data, ctx.kind)
    if k > 0 or _body_on_augmented(ctx):
        return f"train the head with augmentation, cycle_len=1 ({cfg.aug_epochs} epochs)"
    if cfg.fast:
        why = "--fast"
    elif cfg.precompute_aug == 0:
        why = "precompute_aug=0"
    elif cfg.resolved_precompute_aug(per_class) == 0:
        why = f"{per_class:.0f} images a class"
    else:  # views were wanted, but the budget had no time for them
        why = "--budget"
    return f"train the head, cycle_len=1 ({cfg.aug_epochs} epochs; {why}: clean activations, no augmented pass)"


def head_aug(ctx: RunContext):
    """4. The head with augmentation (cached augmented views, else the clean activations), cycle_len=1."""
    if ctx.cfg.aug_epochs <= 0:
        return Skip("aug_epochs=0")
    if _body_on_augmented(ctx):
        ctx.learn.precompute = False
    ctx.run_fit("head_aug", "head_aug", ctx.st.choices["lr"], ctx.cfg.aug_epochs, cycle_len=1)
    ctx.learn.precompute = True
    return DONE


# ------------------------------------------------------------------------------------------------- 5-8: unfrozen
def _unfrozen_plan(ctx: RunContext) -> dict:
    """The unfrozen phase's plan: measured once (:func:`visiontune.run.fine_tune.measured_plan`), then read
    back on --resume."""
    st = ctx.st
    plan = st.choices.get("unfrozen_plan")
    if plan is not None:
        return plan
    # with a budget already spent, or an unfrozen budget too small to buy anything, not even the cost measurement
    # (~2-4 s on 2 CPU cores) is worth running
    available = distributed.broadcast_object(fine_tune.available_seconds(ctx))  # rank 0's clock decides for all
    if available < MIN_UNFROZEN_S:
        plan = {"cycles": 0, "epochs": 0, "available": available, "not_measured": True, "mode": "none"}
    else:
        plan = distributed.broadcast_object(fine_tune.measured_plan(ctx))  # rank 0's clock decides for all
    st.choices["unfrozen_plan"] = plan
    ctx.folder.save_progress(st)
    return plan


def unfreeze(ctx: RunContext):
    """5. Unfreeze, where the measured cost of the unfrozen phase fits its budget; else steps 5-8 are skipped."""
    cfg, learn = ctx.cfg, ctx.learn
    if cfg.fast:
        ctx.say("skipped: steps 5-8, the unfrozen phase (--fast: precompute only)")
        ctx.unfrozen_skip = "--fast (precompute only)"
        return Skip(ctx.unfrozen_skip, quiet=True)
    plan = _unfrozen_plan(ctx)
    if not plan.get("not_measured"):
        ctx.say(fine_tune.describe(plan))
        ctx.lap("fine_tune_plan")  # the "unfreeze" lap that follows is partial fine-tuning's maps
    if plan["cycles"] == 0:
        if plan.get("not_measured"):
            left = "of the --budget left before the export" if cfg.budget is not None else "of unfrozen_budget"
            why = f"{max(plan['available'], 0):.1f} s {left}; keeping the head-only model"
        else:
            why = (f"one unfrozen epoch costs ~{plan['epoch_cost']:.0f} s (+ ~{plan['sweep_cost']:.0f} s lr_find, "
                   f"~{plan['tta_cost']:.0f} s TTA) and {max(plan['available'], 0):.0f} s are available "
                   f"({'--budget' if cfg.budget is not None else 'unfrozen_budget'}); keeping the head-only model")
            if plan.get("mode") == "none" and "partial_epoch_cost" in plan:
                why += f" (partial fine-tuning: ~{plan['partial_epoch_cost']:.0f} s per epoch did not fit either)"
        fine_tune.release_maps(learn)
        learn.freeze()
        learn.precompute = True
        ctx.say(f"skipped: steps 5-8, the unfrozen phase ({why})")
        ctx.unfrozen_skip = why
        return Skip(why, quiet=True)
    fine_tune.enter(learn, plan)
    return DONE


def restore_unfreeze(ctx: RunContext) -> None:
    if "unfreeze" in ctx.st.completed:
        fine_tune.enter(ctx.learn, ctx.st.choices["unfrozen_plan"])
    else:
        ctx.unfrozen_skip = ctx.st.skip_reason("unfreeze")


def differential_lrs(ctx: RunContext):
    """6. Differential learning rates: each layer group ``lr_ratio`` times lower than the next."""
    if ctx.unfrozen_skip:
        return Skip(ctx.unfrozen_skip, quiet=True)
    ctx.st.choices["group_ratio"] = ctx.cfg.lr_ratio
    return DONE


def lr_find_unfrozen(ctx: RunContext):
    """7. lr_find again, unfrozen, on a short sweep around the head rate; clipped to [lr/10, lr]."""
    if ctx.unfrozen_skip:
        return Skip(ctx.unfrozen_skip, quiet=True)
    cfg, st, lr, f = ctx.cfg, ctx.st, ctx.st.choices["lr"], ctx.cfg.lr_ratio
    if st.choices["unfrozen_plan"].get("mode") == "partial":
        st.choices["lr_unfrozen"] = lr * f
        why = (f"partial fine-tuning: the late group trains at step 2's rate ({lr:.3g}), the head {f:g}x faster "
               f"({lr * f:.3g}); see fine_tune.PARTIAL_RATES")
        ctx.say(f"skipped: lr_find unfrozen ({why})")
        return Skip(why, quiet=True)
    seed_everything(cfg.seed + STEPS.index("lr_find_unfrozen"))
    ratios = np.array([1 / f**2, 1 / f, 1.0])
    sched = ctx.learn.lr_find(start_lr=ratios * lr / 100, end_lr=ratios * lr * 10,
                              num_it=st.choices["unfrozen_plan"]["sweep_iters"])
    sugg = sched.suggestion if sched.suggestion is not None else lr
    lr2 = float(np.clip(sugg, lr / 10, lr))
    ctx.lr_find_record("unfrozen", sched, lr2, f"{sched.rule}; clipped to [lr/10, lr] = [{lr / 10:.3g}, {lr:.3g}]")
    st.choices["lr_unfrozen"] = lr2
    return DONE


def _unfrozen_rates(ctx: RunContext) -> np.ndarray:
    f, lr2 = ctx.cfg.lr_ratio, ctx.st.choices["lr_unfrozen"]
    return np.array([lr2 / f**2, lr2 / f, lr2])


def sgdr_unfrozen(ctx: RunContext):
    """8. SGDR, cycle_mult=2 and the plan's cycle_len (1, or longer where the epochs left over allow), stopped
    early (patience) or when the next epoch would not fit."""
    if ctx.unfrozen_skip:
        return Skip(ctx.unfrozen_skip, quiet=True)
    cfg, plan, clock = ctx.cfg, ctx.st.choices["unfrozen_plan"], ctx.clock
    cbs = [EarlyStopping(patience=cfg.patience)] if cfg.patience > 0 else []
    if cfg.budget is not None:
        cbs.append(TimeBudget(time.monotonic() + clock.left() - ctx.reserve - plan["tta_cost"]))
    else:
        cbs.append(TimeBudget(time.monotonic() + 1.5 * plan["available"] - plan["tta_cost"]))
    ctx.run_fit("sgdr_unfrozen", "unfrozen", _unfrozen_rates(ctx), plan["cycles"], cycle_len=plan.get("cycle_len", 1),
                cycle_mult=2, callbacks=cbs)
    return DONE


# ------------------------------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class Step:
    name: str  # as progress.json records it (progress.STEPS)
    number: int  # the notes' step number
    title: Callable[[RunContext], str | None]  # the header line (None: none)
    run: Callable[[RunContext], object]  # returns DONE or Skip(reason)
    saves_weights: bool = False  # weights_after_<name>.safetensors once done
    restore: Callable[[RunContext], None] | None = None  # on --resume, for a step done earlier


def _unfrozen_title(text: Callable[[RunContext], str]):
    return lambda ctx: None if ctx.cfg.fast or ctx.unfrozen_skip else text(ctx)


RECIPE: tuple[Step, ...] = (
    Step("precompute", 1, lambda ctx: "augmentation on, precompute activations", precompute, restore=precompute),
    Step("lr_find_head", 2, lambda ctx: "lr_find on the precomputed head", lr_find_head, restore=say_lr),
    Step("head_precompute", 3, lambda ctx: f"train the head on precomputed activations ({ctx.cfg.head_epochs} epochs)",
         head_precompute, saves_weights=True),
    Step("head_aug", 4, head_aug_title, head_aug, saves_weights=True),
    Step("unfreeze", 5, lambda ctx: None if ctx.cfg.fast else "unfreeze", unfreeze, restore=restore_unfreeze),
    Step("differential_lrs", 6, _unfrozen_title(
        lambda ctx: f"differential learning rates (each group {ctx.cfg.lr_ratio:g}x lower than the next)"),
        differential_lrs),
    Step("lr_find_unfrozen", 7, _unfrozen_title(
        lambda ctx: f"lr_find again, unfrozen ({ctx.st.choices['unfrozen_plan']['sweep_iters']} iterations)"
        if ctx.st.choices["unfrozen_plan"].get("mode") != "partial" else "lr_find again (not for partial fine-tuning)"),
        lr_find_unfrozen),
    Step("sgdr_unfrozen", 8, _unfrozen_title(
        lambda ctx: f"SGDR cycle_len={ctx.st.choices['unfrozen_plan'].get('cycle_len', 1)} cycle_mult=2, "
                    f"{ctx.st.choices['unfrozen_plan']['cycles']} cycle(s), rates "
                    + ", ".join(f"{v:.2g}" for v in _unfrozen_rates(ctx))), sgdr_unfrozen, saves_weights=True),
)
assert tuple(s.name for s in RECIPE) == STEPS


def run_steps(ctx: RunContext) -> None:
    """Run the recipe's steps in order and mark each done or skipped; on ``--resume`` a step done earlier
    is not run again, only restored (a skipped one stays skipped)."""
    for step in RECIPE:
        if ctx.st.skip_reason(step.name) is not None:
            if step.restore is not None:
                step.restore(ctx)
            continue
        title = step.title(ctx)
        if title:
            ctx.say(f"\n== step {step.number}/8: {title}")
        if ctx.st.done(step.name):
            if step.restore is not None:
                step.restore(ctx)
            continue
        outcome = step.run(ctx)
        if isinstance(outcome, Skip):
            ctx.skip(step.name, outcome.reason, quiet=outcome.quiet)
        else:
            ctx.finish(step.name, save_model=step.saves_weights)
