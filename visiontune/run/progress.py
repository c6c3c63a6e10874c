"""The typed record of a run's progress (``progress.json``): what is done, what was skipped and why,
the choices made, the rows so far, and where the time went.

``progress.json`` is read on ``--resume`` and by the report; every value read back is checked here, so a
damaged or edited file is refused with one line naming the field, instead of failing later.

Format (``"format": "visiontune-progress/2"``)::

    status        "running" | "interrupted" | "failed" | "done"
    completed     steps that ran, in order
    skipped       [{"step": ..., "reason": ...}]: steps not run, with the reason (``--resume`` treats them as done)
    current       the step whose fit is under way (its checkpoint.pt is resumable), or null
    choices       rates, precompute_aug, the unfrozen plan, ...
    rows          the epochs so far (as metrics.json)
    lr_find, schedule, best, final
    weights_file  ``weights_after_<step>.safetensors``: the weights after the last finished step
    elapsed       seconds of the run so far (all sessions; start-up included when run from the command line)
    timings       {lap: seconds}: ``startup`` (Python and imports), ``setup`` (data and model), each step,
                  ``evaluate_tta``, ``export``, ``report``; laps of a resumed run add up across sessions

Version 1 files (before the format key) listed skipped steps as completed, with ``"step: reason"``
strings under ``skipped``; they are read as such.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..utils.words import LAP_WORDS, PHASE_WORDS, STEP_WORDS, in_words  # noqa: F401 (re-exported)

FORMAT = "visiontune-progress/2"
STEPS = ("precompute", "lr_find_head", "head_precompute", "head_aug", "unfreeze", "differential_lrs",
         "lr_find_unfrozen", "sgdr_unfrozen")
STATUSES = ("running", "interrupted", "failed", "done")

WEIGHTS_FILE = re.compile(r"weights_after_(" + "|".join(STEPS) + r")\.safetensors")


class ProgressError(ValueError):
    """progress.json holds something no visiontune run writes (damaged or edited)."""


@dataclass
class Skipped:
    step: str
    reason: str

    def __str__(self) -> str:
        return f"{self.step}: {self.reason}"


@dataclass
class Progress:
    status: str = "running"
    completed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    current: str | None = None
    choices: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    lr_find: list[dict] = field(default_factory=list)
    schedule: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    final: dict | None = None
    weights_file: str | None = None
    elapsed: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    # -- steps -------------------------------------------------------------------------------------------
    def done(self, step: str) -> bool:
        """Finished or skipped: a resumed run does not redo it."""
        return step in self.completed or self.skip_reason(step) is not None

    def skip_reason(self, step: str) -> str | None:
        """Why ``step`` was skipped, or None when it was not."""
        return next((s.reason for s in self.skipped if s.step == step), None)

    def complete(self, step: str) -> None:
        if not self.done(step):
            self.completed.append(step)
        self.current = None

    def skip(self, step: str, reason: str) -> None:
        if not self.done(step):
            self.skipped.append(Skipped(step, reason))
        self.current = None

    def add_lap(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + max(0.0, float(seconds)), 3)

    # -- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "status": self.status, "completed": list(self.completed),
                "skipped": [{"step": s.step, "reason": s.reason} for s in self.skipped], "current": self.current,
                "choices": self.choices, "rows": self.rows, "lr_find": self.lr_find, "schedule": self.schedule,
                "best": self.best, "final": self.final, "weights_file": self.weights_file, "elapsed": self.elapsed,
                "timings": self.timings}

    @classmethod
    def from_dict(cls, d: dict, where: str = "progress.json") -> Progress:
        """Check every field; a value no run writes raises :class:`ProgressError` naming it."""
        if not isinstance(d, dict):
            raise ProgressError(f"{where}: expected a JSON object")

        def bad(name: str, what: str):
            return ProgressError(f"{where}: {name} {what} (damaged or edited?); start a new run")

        def typed(name, types, default):
            v = d.get(name, default)
            if v is None and default is None:
                return None
            if not isinstance(v, types) or isinstance(v, bool):
                raise bad(name, f"is a {type(v).__name__}")
            return v

        status = d.get("status", "running")
        if status not in STATUSES:
            raise bad("status", f"is {status!r}, not one of {', '.join(STATUSES)}")
        completed = typed("completed", list, [])
        if any(s not in STEPS for s in completed):
            raise bad("completed", f"names a step that does not exist ({next(s for s in completed if s not in STEPS)!r})")
        skipped = []
        for s in typed("skipped", list, []):
            if isinstance(s, str) and ":" in s:  # version 1: "step: reason"
                step, reason = (p.strip() for p in s.split(":", 1))
            elif isinstance(s, dict):
                step, reason = s.get("step"), s.get("reason", "")
            else:
                raise bad("skipped", f"holds {s!r}")
            if step not in STEPS or not isinstance(reason, str):
                raise bad("skipped", f"names a step that does not exist ({step!r})")
            skipped.append(Skipped(step, reason))
        if d.get("format") is None:  # version 1 listed skipped steps as completed too
            completed = [s for s in completed if s not in {k.step for k in skipped}]
        current = d.get("current")
        if current is not None and current not in STEPS:
            raise bad("current", f"is {current!r}, not a step")
        weights_file = d.get("weights_file")
        if weights_file is not None and (not isinstance(weights_file, str) or not WEIGHTS_FILE.fullmatch(weights_file)):
            raise bad("weights_file", f"{weights_file!r} is not a file this run writes "
                                      "(only weights_after_<step>.safetensors in the run folder)")
        elapsed = typed("elapsed", (int, float), 0.0)
        if not math.isfinite(elapsed) or elapsed < 0:
            raise bad("elapsed", f"is {elapsed}")
        timings = typed("timings", dict, {})
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) for v in timings.values()):
            raise bad("timings", "holds a value that is not a number of seconds")
        return cls(status=status, completed=list(completed), skipped=skipped, current=current,
                   choices=typed("choices", dict, {}), rows=typed("rows", list, []),
                   lr_find=typed("lr_find", list, []), schedule=typed("schedule", dict, {}),
                   best=typed("best", dict, {}) or {}, final=typed("final", dict, None),
                   weights_file=weights_file, elapsed=float(elapsed),
                   timings={str(k): float(v) for k, v in timings.items()})
