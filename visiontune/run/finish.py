"""After the steps: the kept weights evaluated (clean and TTA, in fp32 as the export computes them), the
validation predictions written, the model exported, the report rendered, and the run's result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..imaging.views import tta_views
from ..train import distributed
from ..train.metrics import accuracy, accuracy_multi
from . import records
from .plan import TTA_SHARE, affordable_tta_views, default_tta_views
from .progress import in_words
from .ranks import rank0_reads, rank0_writes
from .reporting import write_final_report
from .steps import RunContext

__all__ = ["RunResult", "evaluate_and_export"]


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


def keep_best(ctx: RunContext) -> None:
    """Load the weights with the lowest validation loss (any phase) on every rank."""
    learn, best = ctx.learn, ctx.st.best or {}
    best_path = ctx.folder.file("best.safetensors")
    if rank0_reads(best_path.is_file):
        records.load_weights_from_rank0(learn, best_path)  # every rank evaluates rank 0's kept weights
    if best.get("phase") in (None, "head_precompute", "head_aug"):
        learn.freeze()  # the body is the pretrained one: its activations come from the cache
        learn.precompute = True
    ctx.say(f"\nkept the weights with the lowest validation loss ({best.get('val_loss', float('nan')):.4f}, "
            f"{in_words(best.get('phase'))}, epoch {best.get('epoch')})")


def _seconds_per_view(st, plan: dict, n_val: int) -> float:
    """One TTA view: an fp32 pass of the whole model over the validation images, as measured in step 1
    (the full plan's measured forward where step 1's pass came from the on-disk cache)."""
    measured = float(st.choices.get("seconds_per_valid_pass", 0.0))
    if measured > 0 or plan.get("mode") == "partial":
        return measured
    return n_val * float(plan.get("seconds_per_image_eval", 0.0))


def choose_tta_views(ctx: RunContext) -> int:
    """The TTA views: ``--tta N``, else the views that cost ~10% of the run (at least the flip); under a
    budget, no more than the time left affords."""
    cfg, st, learn, clock = ctx.cfg, ctx.st, ctx.learn, ctx.clock
    n_val, n_trn = len(ctx.data.val_ds), len(ctx.data.trn_ds)
    plan = st.choices.get("unfrozen_plan") or {}
    n_tta = cfg.resolved_tta()
    if cfg.tta is None and n_tta > 0:
        per_view = _seconds_per_view(st, plan, n_val)
        chosen = default_tta_views(n_tta, per_view, clock.elapsed())
        if chosen < n_tta:
            ctx.say(f"TTA: {chosen} augmented view(s) of {n_tta} (~{per_view:.1f} s a view; more cost over "
                    f"{TTA_SHARE:.0%} of the run; --tta N to choose)")
        n_tta = chosen
    if cfg.budget is not None:
        # each TTA view is one forward pass over the validation images (the clean view is cached already)
        if learn.body_frozen:
            per_image = st.choices.get("seconds_per_train_pass", 0.0) / max(n_trn, 1)
        else:
            per_image = _seconds_per_view(st, plan, n_val) / max(n_val, 1)
        affordable = affordable_tta_views(n_tta, clock.left() - ctx.reserve, n_val, per_image)
        if affordable < n_tta:
            ctx.say(f"budget: {affordable} TTA view(s) instead of {n_tta} ({n_val * per_image:.1f} s a view, "
                    f"{max(clock.left() - ctx.reserve, 0):.1f} s left before export)")
            n_tta = affordable
        n_tta = distributed.broadcast_object(n_tta)  # rank 0's clock decides for all ranks
    return n_tta


def evaluate_and_export(ctx: RunContext) -> tuple[Path | None, Path | None]:
    """TTA, validation predictions, export and report of the kept weights; returns (model, report) paths."""
    cfg, st, learn, data, folder, kind = ctx.cfg, ctx.st, ctx.learn, ctx.data, ctx.folder, ctx.kind
    keep_best(ctx)
    n_tta = choose_tta_views(ctx)
    preds, y = learn.predict_with_targs()
    tta = learn.TTA(n_aug=n_tta)[0] if n_tta > 0 else None
    acc = tta_acc = None
    if kind == "single":
        acc, tta_acc = accuracy(preds, y), (accuracy(tta, y) if tta is not None else None)
    elif kind == "multi":
        acc, tta_acc = accuracy_multi(preds, y), (accuracy_multi(tta, y) if tta is not None else None)
    val_loss = float(learn.crit(torch.from_numpy(np.asarray(preds, np.float32)), torch.from_numpy(np.asarray(y))))
    records.write_val_predictions(folder, data, kind, preds, y, tta)
    ctx.lap("evaluate_tta")
    ctx.say(f"validation: accuracy {acc if acc is None else f'{acc:.4f}'}, TTA ({n_tta} view(s) + clean) accuracy "
            f"{tta_acc if tta_acc is None else f'{tta_acc:.4f}'}, val_loss {val_loss:.4f}")

    from ..infer.export import export_model

    model_path = rank0_writes(export_model)(learn.model, folder.path,
                                            preprocessing=records.preprocessing_dict(data, kind),
                                            classes=records.output_names(data), kind=kind, fmt=cfg.export_format,
                                            tta_views=tta_views(n_tta))  # predict --tta: the same views
    if model_path is not None:
        folder.note_written(Path(model_path).name)
        folder.note_written("model.json")
    ctx.say(f"exported {model_path}")
    ctx.lap("export")
    st.final = {"accuracy": acc, "tta_accuracy": tta_acc, "val_loss": val_loss, "tta_views": n_tta,
                "seconds": ctx.clock.elapsed()}
    st.status = "done"
    st.elapsed = ctx.clock.elapsed()
    folder.save_progress(st)
    report_path = None
    try:  # the previews are the report's: drawn here, after training, not on the training clock
        records.write_aug_previews(data, folder)
    except Exception as e:  # a preview is never worth failing a run for
        ctx.say(f"note: augmentation previews not written ({type(e).__name__}: {e})")
    try:
        report_path = rank0_writes(write_final_report)(folder, st, ctx.lap)
        ctx.say(f"report {report_path}")
    except Exception as e:  # the model is trained and exported; a report failure is a note, not a failure
        ctx.say(f"note: report not written ({type(e).__name__}: {e})")
        ctx.lap("report")
    for f in sorted(folder.path.glob("weights_after_*.safetensors")) if distributed.is_main_process() else []:
        folder.remove(f.name)  # only names of this run's own weights files (run.progress.WEIGHTS_FILE)
    st.weights_file = None  # the kept model is best.safetensors
    st.elapsed = ctx.clock.elapsed()
    folder.save_progress(st)
    return distributed.broadcast_object((model_path, report_path))  # rank 0's files
