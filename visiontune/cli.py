"""The ``visiontune`` command line: train, predict, submit, export, report, inspect, demo.

Every command is one call in the Python API:

=================  ===============================================================
command            Python
=================  ===============================================================
``train``          ``visiontune.run.recipe.train_run(TrainConfig(...))``
``predict``        ``visiontune.infer.predict.predict_paths(model, paths)``
``submit``         ``visiontune.infer.submit.make_submission(model, test_dir, out)``
``export``         ``visiontune.run.exported.export_run(run_dir, fmt)``
``report``         ``visiontune.report.write_report(run_dir)``
``inspect``        ``visiontune.data.inspect_dataset(path)``
``demo``           ``visiontune.demo.run_demo()``
=================  ===============================================================

Exit codes: 0 success; 1 a user mistake or a failed run (one line ``visiontune: error: ...``, no
traceback; ``--verbose`` shows it); 2 bad command-line usage; 130 interrupted (Ctrl-C), with the
command that resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import math
import os
import sys
import time
import traceback
from pathlib import Path

from .utils.text import printable

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
  8 SGDR cycle_len=1 cycle_mult=2 until the validation loss stops improving (--max-cycles 3)
Steps 5-8 run only when they fit: --unfrozen-budget seconds (default 30) or what --budget
leaves; the weights with the lowest validation loss are kept. Then TTA, export, report.

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


class UsageError(Exception):
    """A wrong combination of options (exit code 2)."""


# OSErrors that mean something about the user's files or machine, not a bug: one line, no traceback
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                errno.EEXIST, errno.ENAMETOOLONG, errno.EDQUOT, errno.EMFILE, errno.ELOOP, errno.EIO}


def _is_user_error(e: BaseException) -> bool:
    """Known user mistakes print as one line; anything else (a KeyError, a TypeError, an OSError with no
    file behind it) is an internal error: one line that says so, and --verbose shows the traceback."""
    from .imaging.limits import ImageLoadError
    from .models.backbone import WeightsNotAvailable
    from .train.loop import TrainingDiverged

    if isinstance(e, (ValueError, WeightsNotAvailable, ImageLoadError, TrainingDiverged)):
        return True
    if not isinstance(e, OSError):
        return False
    # a missing or unwritable file or folder, a message of ours (no errno), a known errno with a file or not
    return (isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError))
            or e.errno is None or e.filename is not None or e.errno in _USER_ERRNOS)


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
    from .run.config import LIMITS

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
    from . import __version__

    parser.add_argument("--version", action="version", version=f"visiontune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # train ---------------------------------------------------------------------------------------------
    from .run.config import field_default as D  # the train options' defaults are TrainConfig's

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
                   help=f"seconds for steps 5-8 when --budget is not given (default {D('unfrozen_budget'):g})")
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
    t.set_defaults(func=cmd_train)

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
    p.set_defaults(func=cmd_predict)

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
    s.set_defaults(func=cmd_submit)

    # export --------------------------------------------------------------------------------------------
    e = sub.add_parser("export", parents=[common], formatter_class=_formatter, epilog=_EXPORT_EPILOG,
                       help="export a run's best weights to ONNX or TorchScript",
                       description="Export best.safetensors of a run as ONNX / TorchScript, with model.json beside it.")
    e.add_argument("run", help="run folder")
    e.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    e.add_argument("--out", metavar="DIR", help="folder to write (default: the run folder)")
    e.set_defaults(func=cmd_export)

    # report --------------------------------------------------------------------------------------------
    r = sub.add_parser("report", parents=[common], formatter_class=_formatter, epilog=_REPORT_EPILOG,
                       help="write the self-contained HTML report of a run",
                       description="Write report.html for a run folder (plots embedded; no network needed).")
    r.add_argument("run", help="run folder")
    r.add_argument("--out", metavar="FILE", help="HTML file (default RUN/report.html)")
    r.set_defaults(func=cmd_report)

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
    i.set_defaults(func=cmd_inspect)

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
    dm.set_defaults(func=cmd_demo)
    return parser


# ------------------------------------------------------------------------------------------------ commands
PYTHON_BOOT_MAX_S = 2.0  # the interpreter's own start before it imports visiontune, at most


def seconds_since_process_start() -> float:
    """Wall seconds since this program started: since ``import visiontune`` plus the interpreter's own start
    before it (read from Linux ``/proc``, at most :data:`PYTHON_BOOT_MAX_S`).

    The process may be older than the program: ``bash -c "pip install . && visiontune demo"`` execs
    ``visiontune`` in the shell's process, whose start time is the shell's, before pip ran.
    """
    import visiontune

    since_import = time.monotonic() - visiontune.IMPORTED_AT
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        process_age = max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        process_age = since_import
    return since_import + min(max(process_age - since_import, 0.0), PYTHON_BOOT_MAX_S)


def _say(args, msg: str) -> None:
    if not args.quiet:
        print(msg, flush=True)


def cmd_train(args) -> int:
    from .train import distributed
    from .run.config import TrainConfig
    from .run.recipe import train_run

    # Under torchrun (WORLD_SIZE > 1) every rank runs the recipe data-parallel; rank 0 alone prints and
    # writes the run folder, and the clock-based choices are rank 0's (see docs/scaling.md).
    distributed.init_distributed()
    console = "verbose" if args.verbose else "normal"  # --quiet: verbose=False
    if args.resume:
        if args.data:
            raise UsageError("give either DATA or --resume RUN, not both")
        defaults = vars(build_parser().parse_args(["train"]))
        ignored = [k for k, v in vars(args).items()
                   if k not in ("resume", "quiet", "verbose", "func", "command", "cache_dir")
                   and k in defaults and v != defaults[k]]
        if ignored:
            raise UsageError(f"--resume continues the run with its own settings ({args.resume}/config.json); "
                             f"drop {', '.join('--' + k.replace('_', '-') for k in ignored)}")
        result = train_run(TrainConfig(data="", verbose=not args.quiet, console=console, cache_dir=args.cache_dir),
                           resume=args.resume, spent_before=seconds_since_process_start())
    else:
        if not args.data:
            raise UsageError("DATA is required (or --resume RUN)")
        # every option named like a TrainConfig field goes to it (the parser's defaults are the fields')
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if f.name not in ("verbose", "console") and hasattr(args, f.name)}
        cfg = TrainConfig(**given, verbose=not args.quiet, console=console)
        # the run's clock starts with the process: Python and the imports took seconds already (the start-up
        # lap; --budget counts them, and the final wall time matches `time visiontune train`)
        result = train_run(cfg, spent_before=seconds_since_process_start())
    if args.quiet and distributed.is_main_process():
        print(result.summary())
    if distributed.is_distributed():
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def cmd_predict(args) -> int:
    from .infer.predict import format_predictions, predict_paths
    from .utils.atomic import atomic_write_text

    rows = predict_paths(args.model, args.images, top_k=args.top_k, tta=args.tta)
    text = format_predictions(rows, args.format, args.top_k)
    if args.out:
        atomic_write_text(args.out, text)
        _say(args, f"wrote {len(rows)} predictions to {args.out}")
    elif hasattr(sys.stdout, "buffer"):  # a file name that is not UTF-8 on disk goes out as its own bytes
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode(sys.stdout.encoding or "utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(text)
    return 0


def cmd_submit(args) -> int:
    from .infer.submit import make_submission

    out = make_submission(args.model, args.test_dir, args.out, binary=args.binary, tta=args.tta,
                          exact_ids=args.exact_ids)
    _say(args, f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from .run.exported import export_run

    path = export_run(args.run, fmt=args.format, out_dir=args.out)
    _say(args, f"exported {path} (+ {path.with_suffix('.json').name})")
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    from .run.folder import is_run_folder

    if Path(args.run).is_dir() and not is_run_folder(Path(args.run)):
        raise ValueError(f"{args.run} is not a visiontune run folder (no config.json with data and arch, or no "
                         "progress.json); nothing was written. Give the folder `visiontune train --out` wrote")
    path = write_report(args.run, out=args.out)
    _say(args, f"wrote {path}")
    return 0


def cmd_inspect(args) -> int:
    import json

    from .data import format_inspection, inspect_dataset

    rep = inspect_dataset(args.data, out_dir=args.out, csv=args.csv, suffix=args.suffix, folder=args.folder)
    print(json.dumps(rep, indent=2) if args.json else format_inspection(rep))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    result = run_demo(data=args.data, out=args.out, download=args.download, sha256=args.sha256,
                      budget=args.budget, verbose=not args.quiet, seed=args.seed,
                      spent_before=seconds_since_process_start())
    print(f"demo finished: open {result.report_path}" if result.report_path else result.summary())
    return 0


def _escape_warnings() -> None:
    """Warnings print with every control character but their own line breaks escaped (a file name holding
    ``\\x1b[2J`` cannot clear the terminal); the messages escape names themselves too (``printable``)."""
    import warnings

    if getattr(warnings.formatwarning, "_visiontune", False):
        return
    plain = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        text = plain(message, category, filename, lineno, line)
        return "\n".join(printable(part) for part in text.split("\n"))

    formatwarning._visiontune = True
    warnings.formatwarning = formatwarning


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    lines = text.splitlines()
    first = lines[0].rstrip(":")
    if len(lines) > 1:
        first += f" (+{len(lines) - 1} more lines; --verbose shows them)"
    return first


def _end_process(rc: int) -> None:
    """End a ``train`` / ``demo`` process as soon as its work is done: Python's exit handlers run (worker
    pools, temporary files), the interpreter's own teardown of torch and the engines (1-3 s on 2 cores,
    after the final wall time was printed) is skipped, so that time matches ``time visiontune train``."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(rc)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] in (["train"], ["demo"]):  # the command line itself, not a call from Python
        _end_process(_main(argv))
    return _main(argv)


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    _escape_warnings()
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    try:
        return args.func(args)
    except UsageError as e:
        parser.exit(2, f"{PROG} {args.command}: error: {e}\n")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI boundary: one line, no traceback
        from .run.recipe import TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            from .train.distributed import is_main_process

            if is_main_process():  # once, under torchrun
                print(f"{PROG}: {e}", file=sys.stderr)
            return 130
        if verbose:
            traceback.print_exc()
        if _is_user_error(e):
            print(f"{PROG}: error: {printable(_one_line(e))}", file=sys.stderr)
        else:
            print(f"{PROG}: error: {type(e).__name__}: {printable(_one_line(e))} (an internal error; --verbose shows "
                  "the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
