"""``TrainConfig``: everything ``visiontune train`` takes, in one place.

The command line's ``train`` options take their defaults from these fields, and ``cmd_train`` builds the
config from the parsed options by field name, so the two cannot disagree. Torch-free: ``visiontune --help``
reads it without loading torch.

>>> cfg = TrainConfig(data="photos", fast=True)
>>> cfg.resolved_tta(), cfg.resolved_precompute_aug(), field_default("size")
(2, 0, 224)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from ..imaging.views import MAX_TTA_VIEWS, VIEW_NAMES

DEFAULT_UNFROZEN_BUDGET = None
"""Steps 5-8's seconds without --budget: ``None`` is as long as the head-only run would take in whole: the run so
far and its final TTA (run/fine_tune.py)."""

# The bounds of every numeric option (the CLI's argparse types and ``validate`` use these): a value past
# them is a typo or an attack, refused before any work starts (issue 17, item 10).
LIMITS = {
    "budget": (0.0, 7 * 24 * 3600.0),          # seconds, > 0 and at most a week
    "unfrozen_budget": (0.0, 7 * 24 * 3600.0),
    "lr": (0.0, 10.0),                          # > 0; a head learning rate above 10 is a typo
    "lr_ratio": (1.0, 1000.0),
    "max_zoom": (1.0, 10.0),
    "val_pct": (0.0, 1.0),                      # strictly between
    "ps": (0.0, 1.0),                           # [0, 1)
    "seed": (0, 2**32 - 1),
    "size": (16, 1_000_000),                    # the memory check refuses what the machine cannot hold
    "bs": (1, 65_536),
    "precompute_aug": (0, 64),
    "head_epochs": (0, 10_000),
    "aug_epochs": (0, 10_000),
    "max_cycles": (0, 20),                      # 2**20 - 1 epochs at most
    "patience": (0, 10_000),
    "tta": (0, MAX_TTA_VIEWS),
    "num_workers": (0, 1024),
}


def show_number(v) -> str:
    """``v`` short: ints in full, floats as ``%g``."""
    return str(v) if isinstance(v, int) else f"{v:g}"


@dataclass
class TrainConfig:
    """Everything ``visiontune train`` takes. ``data`` is the only required field."""

    data: str
    csv: str | None = None  # labels CSV (name under data, or a path): images in data/<folder>/<id><suffix>
    suffix: str = ""
    folder: str = "train"
    val_name: str = "valid"  # folder layout: 'valid' falls back to 'val'
    test_name: str | None = None
    val_pct: float = 0.2  # CSV layout: get_cv_idxs(n, val_pct=...)
    arch: str = "efficientnet_lite0"
    size: int = 224
    bs: int = 32
    out: str | None = None
    fast: bool = False
    budget: float | None = None  # total seconds for the run
    unfrozen_budget: float | None = DEFAULT_UNFROZEN_BUDGET  # seconds for steps 5-8 without budget (None: the head-only run's)
    multi_label: bool = False
    regression: bool = False
    seed: int = 42
    weights: str | None = None
    engine: str = "auto"
    aug: str = "side_on"  # side_on | top_down | none
    max_zoom: float = 1.1
    precompute_aug: int | None = None  # None: 2 under 50 images a class, else 0; 0 with fast
    head_epochs: int = 2
    aug_epochs: int = 3
    lr: float | None = None  # skip step 2's choice
    lr_ratio: float = 3.0
    max_cycles: int = 3
    patience: int = 2
    tta: int | None = None  # None: up to 4 augmented views (2 with fast), as many as cost ~10% of the run
    ps: float | None = None
    export_format: str = "onnx"
    cache_dir: str | None = None
    num_workers: int | None = None
    verbose: bool = True  # False: --quiet
    console: str = "normal"  # "normal" or "verbose" (--verbose: tracebacks); config.json records the mode used
    overwrite: bool = False  # --out may hold an earlier run, whose files are replaced (others stay)

    def validate(self) -> None:
        """Conflicting or impossible options are refused before any work starts."""
        if self.multi_label and self.regression:
            raise ValueError("--multi-label and --regression exclude each other")
        if (self.multi_label or self.regression) and not self.csv:
            raise ValueError("--multi-label and --regression need labels in a CSV (--csv labels.csv)")
        for name in ("max_zoom", "lr_ratio", "unfrozen_budget", "val_pct", "lr", "budget", "ps"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        if not 0 < self.val_pct < 1:
            raise ValueError(f"val_pct must be between 0 and 1 (the share of CSV rows to validate on), got {self.val_pct}")
        if self.ps is not None and not 0 <= self.ps < 1:
            raise ValueError(f"ps (dropout) must be in [0, 1), got {self.ps}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if self.bs < 1:
            raise ValueError(f"batch size must be >= 1, got {self.bs}")
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"budget must be a positive number of seconds, got {self.budget}")
        if self.aug not in ("side_on", "top_down", "none"):
            raise ValueError(f"invalid augmentation {self.aug!r}. Only side_on, top_down, none are supported.")
        if self.export_format not in ("onnx", "torchscript"):
            raise ValueError(f"invalid export format {self.export_format!r}. Only onnx, torchscript are supported.")
        if self.lr_ratio < 1:
            raise ValueError(f"lr_ratio must be >= 1 (each layer group 1x-10x lower than the next), got {self.lr_ratio}")
        for name in ("precompute_aug", "head_epochs", "aug_epochs", "tta", "max_cycles", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tta is not None and self.tta > MAX_TTA_VIEWS:
            raise ValueError(f"tta must be at most {MAX_TTA_VIEWS} (--tta): the TTA views are "
                             f"{', '.join(VIEW_NAMES)}, the clean one always included; got {self.tta}")
        for name in ("folder", "val_name", "test_name"):  # folders of the data: never outside it
            value = getattr(self, name)
            if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
                raise ValueError(f"{name} must be a folder inside the data folder, got {value!r}")
        if self.console not in ("normal", "verbose"):
            raise ValueError(f"console must be 'normal' or 'verbose', got {self.console!r}")
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(lo, int) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")  # noqa: TRY004 - a user error
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be between {show_number(lo)} and {show_number(hi)}, got {show_number(value)}")
        if self.head_epochs == 0 and self.aug_epochs == 0:
            raise ValueError("head_epochs and aug_epochs are both 0 (--head-epochs, --aug-epochs): the new head "
                             "would never be trained; give one of them at least 1 epoch")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resolved_precompute_aug(self, images_per_class: float | None = None) -> int:
        """Augmented views cached per training image: as given, else 0 with ``fast`` (one clean pass), else
        :func:`visiontune.run.plan.default_aug_views` (2 on small data, none from 50 images a class)."""
        from .plan import default_aug_views

        if self.precompute_aug is not None:
            return self.precompute_aug
        return 0 if self.fast else default_aug_views(images_per_class)

    def resolved_tta(self) -> int:
        """Augmented TTA views wanted: as given, else 4 (2 with ``fast``). Unless given, the recipe evaluates
        only as many as :func:`visiontune.run.plan.default_tta_views` finds cheap enough."""
        return self.tta if self.tta is not None else (2 if self.fast else 4)


def field_default(name: str):
    """The default of ``TrainConfig.<name>`` (what the command line shows and uses)."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]
