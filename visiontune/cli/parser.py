"""The ``visiontune`` command line's parser: every command, its options and its examples (``--help``).

``train``'s options take their defaults and bounds from :class:`visiontune.run.config.TrainConfig` and
``run.config.LIMITS``. A command runs as ``visiontune.cli.cmd_<command>`` (:mod:`.commands`).
"""
from __future__ import annotations

import argparse
import math

PROG = "visiontune"

_MAIN_EPILOG = """\
examples:
  visiontune demo                                   # offline: trains on built-in shapes, writes runs/demo/report.html
  visiontune train data/dogscats --out runs/dc      # folders: train/<class>/, valid/<class>/
  visiontune train data/dogbreeds --csv labels.csv --suffix .jpg --out runs/breeds
  visiontune predict runs/dc photos/ --top-k 2
  visiontune submit runs/breeds data/dogbreeds/test --out submission.csv
  visiontune report runs/dc

Run `visiontune COMMAND --help` for each command's options.
"""

_TRAIN_EPILOG = """\
examples:
  visiontune train data/hymenoptera --out runs/ants           # the full recipe (unfrozen phase if it fits)
  visiontune train data/hymenoptera --fast                    # precompute only: seconds on a CPU
  visiontune train data/hymenoptera --budget 300              # the best model that fits in 5 minutes
  visiontune train data/dogbreeds --csv labels.csv --suffix .jpg --test-name test
  visiontune train data/planet --csv train_v2.csv --suffix .jpg --multi-label --aug top_down
  visiontune train --resume runs/ants                         # continue an interrupted run

The recipe (fastai lesson 1-2's "Overview of the Steps"):
  1 augmentation on, precompute activations (+ --precompute-aug augmented views per image)
  2 lr_find on the head; rate = suggestion clipped to [1e-3, 1e-1] (--lr to set it)
  3 head on precomputed activations (--head-epochs, 2)
  4 head with augmentation, cycle_len=1 (--aug-epochs, 3)
  5 unfreeze      6 rates lr/f^2, lr/f, lr (--lr-ratio f, 3)      7 lr_find again
  8 SGDR cycle_mult=2 (cycle_len=1, or longer where spare epochs fit) until the validation loss stops improving (--max-cycles 3)
Steps 5-8 fine-tune the whole network, or (partial fine-tuning, where it buys more epochs) the late
layer group and the head on cached early-group maps; they run only when they fit: --unfrozen-budget
seconds (default: as long as steps 1-4 took) or what --budget leaves. The weights with the lowest
validation loss are kept. Then TTA, export, report.

Run folder: config.json, metrics.csv/json, lr_find.json, schedule.json, best.safetensors,
checkpoint.pt, val_predictions.csv, model.onnx + model.json, report.html, ...
--out must be a new or empty folder (an earlier run's folder with --overwrite), outside any data
set; one run at a time writes into it (a second one stops, naming the first).
"""

_PREDICT_EPILOG = """\
examples:
  visiontune predict runs/ants photo.jpg                  # top 3 classes, CSV on stdout
  visiontune predict runs/ants/model.json photos/ --top-k 1 --tta --format json --out preds.json
"""

_SUBMIT_EPILOG = """\
examples:
  visiontune submit runs/breeds data/dogbreeds/test --out submission.csv   # id + one column per breed
  visiontune submit runs/dogscats data/dogscats/test1 --out sub.csv --binary  # id,label = p(dog)
"""

_EXPORT_EPILOG = """\
examples:
  visiontune export runs/ants                       # runs/ants/model.onnx + model.json
  visiontune export runs/ants --format torchscript  # runs/ants/model.pt + model.json
"""

_REPORT_EPILOG = """\
examples:
  visiontune report runs/ants                # writes runs/ants/report.html
  visiontune report runs/ants --out ants.html
"""

_INSPECT_EPILOG = """\
examples:
  visiontune inspect data/hymenoptera
  visiontune inspect data/dogbreeds --csv labels.csv --suffix .jpg --out inspect/   # + size histograms
"""

_DEMO_EPILOG = """\
examples:
  visiontune demo                          # built-in generated shapes, offline, about a minute
  visiontune demo --data data/hymenoptera  # your own folder (train/<class>/, valid/<class>/)
  visiontune demo --download URL --sha256 HEX   # a zip/tar of such folders, checksum verified
"""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=34)


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final result")
    g.add_argument("-v", "--verbose", action="store_true", help="more detail; tracebacks on errors")
    return p


def _finite_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
    return v


def _bounded_int(lo: int, hi: int):
    """An argparse type: a whole number in [lo, hi] (``1e23``, ``3.5`` and ``99999999999`` are refused at once)."""
    def parse(s: str) -> int:
        try:
            v = int(s.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {s}")
        return v
    parse.__name__ = "whole number"
    return parse


def _bounded_float(lo: float, hi: float, lo_open: bool = True, hi_open: bool = False, unit: str = ""):
    """An argparse type: a finite number in (lo, hi] (open / closed ends as given)."""
    def parse(s: str) -> float:
        v = _finite_float(s)
        if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g} and "
                                             f"{'<' if hi_open else '<='} {hi:g}{unit}, got {s}")
        return v
    parse.__name__ = "number"
    return parse


def _limit_type(name: str, **kw):
    """The argparse type of the numeric ``train`` option ``name``, bounded by ``run.config.LIMITS``."""
    from ..run.config import LIMITS

    lo, hi = LIMITS[name]
    if isinstance(lo, int):
        return _bounded_int(lo, hi)
    return _bounded_float(lo, hi, **kw)


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_formatter,
        description="From a folder or CSV of labelled photos to an accurate, exported image classifier "
                    "(the fastai lesson-1 recipe).",
        epilog=_MAIN_EPILOG)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"visiontune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # train ---------------------------------------------------------------------------------------------
    from ..run.config import field_default as D  # the train options' defaults are TrainConfig's

    t = sub.add_parser("train", parents=[common], formatter_class=_formatter, epilog=_TRAIN_EPILOG,
                       help="train a classifier with the lesson's recipe",
                       description="Train an image classifier with the 8-step recipe; write a run folder.")
    t.add_argument("data", nargs="?", help="data folder (train/<class>/ + valid|val/<class>/, or images + --csv)")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder (no DATA needed)")
    t.add_argument("--out", metavar="RUN", help="run folder to write: new or empty (default runs/<data name>)")
    t.add_argument("--overwrite", action="store_true",
                   help="--out may hold an earlier run: replace that run's files (other files stay)")
    d = t.add_argument_group("data")
    d.add_argument("--csv", metavar="FILE", help="labels CSV (file id, label); images in DATA/--folder")
    d.add_argument("--suffix", default=D("suffix"), help="appended to each CSV id to name its file, e.g. .jpg")
    d.add_argument("--folder", default=D("folder"), help="image folder for --csv (default: train)")
    d.add_argument("--val-name", default=D("val_name"), help="validation folder (default valid, falls back to val)")
    d.add_argument("--val-pct", type=_limit_type("val_pct", hi_open=True), default=D("val_pct"), help="validation share for --csv (get_cv_idxs)")
    d.add_argument("--test-name", metavar="FOLDER", help="also precompute this unlabelled folder (e.g. test)")
    d.add_argument("--multi-label", action="store_true", help="CSV labels are space-separated tags")
    d.add_argument("--regression", action="store_true", help="CSV labels are numbers")
    d.add_argument("--size", type=_limit_type("size"), default=D("size"), help=f"image size the network sees (default {D('size')})")
    d.add_argument("--bs", type=_limit_type("bs"), default=D("bs"), help=f"batch size (default {D('bs')})")
    d.add_argument("--aug", choices=("side_on", "top_down", "none"), default=D("aug"),
                   help="augmentation: side_on photos (flips), top_down (dihedral), none")
    m = t.add_argument_group("model and recipe")
    m.add_argument("--arch", default=D("arch"),
                   help="backbone (efficientnet_lite0/1/2 work offline; resnet34, ... or any timm name)")
    m.add_argument("--weights", metavar="FILE", help="backbone weights file (.safetensors / .pth)")
    m.add_argument("--engine", default=D("engine"), help="forward engine for precompute: auto, openvino, onnxruntime, torch...")
    m.add_argument("--fast", action="store_true", help="precompute only (steps 1-4): no unfreezing")
    m.add_argument("--budget", type=_limit_type("budget", unit=" s (a week)"), metavar="SECONDS",
                   help="total time budget: the best model that fits (at most a week)")
    m.add_argument("--unfrozen-budget", type=_limit_type("unfrozen_budget", unit=" s (a week)"), default=D("unfrozen_budget"), metavar="SECONDS",
                   help="seconds for steps 5-8 (fine-tuning) and the final TTA when --budget is not given (default: "
                        "as long as the head-only run would take in whole, so the whole run takes at most about "
                        "twice the head-only model's time)")
    m.add_argument("--lr", type=_limit_type("lr"), help="head learning rate (default: chosen by lr_find)")
    m.add_argument("--lr-ratio", type=_limit_type("lr_ratio", lo_open=False), default=D("lr_ratio"),
                   help=f"each layer group this much lower than the next ({D('lr_ratio'):g})")
    m.add_argument("--precompute-aug", type=_limit_type("precompute_aug"), default=None, metavar="K",
                   help="augmented views cached per image (2 under 50 images a class, else 0; 0 with --fast)")
    m.add_argument("--head-epochs", type=_limit_type("head_epochs"), default=D("head_epochs"), help=f"step 3 epochs ({D('head_epochs')})")
    m.add_argument("--aug-epochs", type=_limit_type("aug_epochs"), default=D("aug_epochs"), help=f"step 4 epochs ({D('aug_epochs')})")
    m.add_argument("--max-cycles", type=_limit_type("max_cycles"), default=D("max_cycles"),
                   help=f"SGDR cycles at most in step 8 ({D('max_cycles')} = {2 ** D('max_cycles') - 1} epochs)")
    m.add_argument("--patience", type=_limit_type("patience"), default=D("patience"), help="stop step 8 after this many epochs without improvement")
    m.add_argument("--tta", type=_limit_type("tta"), default=None, metavar="N", help="augmented TTA views, 0-4: mirror, zoom in, zoom in mirrored, zoom out (up to 4, 2 with --fast, as many as cost ~10%% of the run; 0 = none)")
    m.add_argument("--ps", type=_limit_type("ps", lo_open=False, hi_open=True), help="head dropout")
    m.add_argument("--seed", type=_limit_type("seed"), default=D("seed"), help=f"random seed (default {D('seed')})")
    m.add_argument("--export-format", choices=("onnx", "torchscript"), default=D("export_format"))
    m.add_argument("--cache-dir", metavar="DIR", help="activation cache (default $VISIONTUNE_CACHE or ~/.cache/visiontune)")
    m.add_argument("--num-workers", type=_limit_type("num_workers"), help="image-loading worker processes")

    # predict -------------------------------------------------------------------------------------------
    p = sub.add_parser("predict", parents=[common], formatter_class=_formatter, epilog=_PREDICT_EPILOG,
                       help="predict classes of images with an exported model",
                       description="Predict with an exported model (a run folder, model.json or model.onnx).")
    p.add_argument("model", help="run folder, model.json, or model.onnx / model.pt")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--top-k", type=_bounded_int(1, 100_000), default=3, help="classes per image (default 3)")
    p.add_argument("--tta", action="store_true", help="average the clean view and the TTA views the run used (model.json's tta_views)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")

    # submit --------------------------------------------------------------------------------------------
    s = sub.add_parser("submit", parents=[common], formatter_class=_formatter, epilog=_SUBMIT_EPILOG,
                       help="write a Kaggle-style submission CSV",
                       description="Kaggle-style submission: id (file stem) + one probability column per class.")
    s.add_argument("model", help="run folder, model.json, or model.onnx")
    s.add_argument("test_dir", help="folder of test images")
    s.add_argument("--out", required=True, metavar="FILE", help="submission CSV to write")
    s.add_argument("--binary", action="store_true", help="two classes: id,label = probability of class 1")
    s.add_argument("--tta", action="store_true", help="average the clean view and the TTA views the run used")
    s.add_argument("--exact-ids", action="store_true",
                   help="write ids and class headers exactly; by default one starting with = + - @ (a "
                        "spreadsheet formula) gets a leading ' and a warning says so")

    # export --------------------------------------------------------------------------------------------
    e = sub.add_parser("export", parents=[common], formatter_class=_formatter, epilog=_EXPORT_EPILOG,
                       help="export a run's best weights to ONNX or TorchScript",
                       description="Export best.safetensors of a run as ONNX / TorchScript, with model.json beside it.")
    e.add_argument("run", help="run folder")
    e.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    e.add_argument("--out", metavar="DIR", help="folder to write (default: the run folder)")

    # report --------------------------------------------------------------------------------------------
    r = sub.add_parser("report", parents=[common], formatter_class=_formatter, epilog=_REPORT_EPILOG,
                       help="write the self-contained HTML report of a run",
                       description="Write report.html for a run folder (plots embedded; no network needed).")
    r.add_argument("run", help="run folder")
    r.add_argument("--out", metavar="FILE", help="HTML file (default RUN/report.html)")

    # inspect -------------------------------------------------------------------------------------------
    i = sub.add_parser("inspect", parents=[common], formatter_class=_formatter, epilog=_INSPECT_EPILOG,
                       help="look at a dataset: counts, sizes, unreadable files, duplicates",
                       description="Scan a dataset folder and report class counts, sizes and problems.")
    i.add_argument("data", help="data folder")
    i.add_argument("--csv", metavar="FILE", help="labels CSV")
    i.add_argument("--suffix", default="", help="appended to CSV ids")
    i.add_argument("--folder", default="train", help="image folder for --csv")
    i.add_argument("--out", metavar="DIR", help="save width/height histograms here")
    i.add_argument("--json", action="store_true", help="print the full result as JSON")

    # demo ----------------------------------------------------------------------------------------------
    dm = sub.add_parser("demo", parents=[common], formatter_class=_formatter, epilog=_DEMO_EPILOG,
                        help="train on a built-in dataset and write a report (offline, ~1 minute)",
                        description="Generate a small shapes dataset, train on it and write the report.")
    dm.add_argument("--data", metavar="DIR", help="use this folder instead of the generated shapes")
    dm.add_argument("--out", default="runs/demo", metavar="RUN", help="run folder (default runs/demo)")
    dm.add_argument("--download", metavar="URL", help="fetch a zip/tar dataset instead (needs --sha256)")
    dm.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the --download archive")
    dm.add_argument("--budget", type=_limit_type("budget", unit=" s (a week)"), default=60.0, metavar="SECONDS", help="time budget (60)")
    dm.add_argument("--seed", type=_limit_type("seed"), default=42)
    return parser
