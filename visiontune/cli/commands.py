"""The ``visiontune`` commands: ``cmd_<command>(args) -> exit code``, each one call in the Python API
(see :mod:`visiontune.cli`). Heavy modules are imported inside each command, so that ``--help`` and
``predict`` on an exported model start without torch."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from .parser import build_parser


class UsageError(Exception):
    """A wrong combination of options (exit code 2)."""


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
    from ..train import distributed
    from ..run.config import TrainConfig
    from ..run.recipe import train_run

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
    from ..infer.predict import format_predictions, predict_paths
    from ..utils.atomic import atomic_write_text

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
    from ..infer.submit import make_submission

    out = make_submission(args.model, args.test_dir, args.out, binary=args.binary, tta=args.tta,
                          exact_ids=args.exact_ids)
    _say(args, f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from ..run.exported import export_run

    path = export_run(args.run, fmt=args.format, out_dir=args.out)
    _say(args, f"exported {path} (+ {path.with_suffix('.json').name})")
    return 0


def cmd_report(args) -> int:
    from ..run.folder import is_run_folder
    from ..run.reporting import write_report

    if Path(args.run).is_dir() and not is_run_folder(Path(args.run)):
        raise ValueError(f"{args.run} is not a visiontune run folder (no config.json with data and arch, or no "
                         "progress.json); nothing was written. Give the folder `visiontune train --out` wrote")
    path = write_report(args.run, out=args.out)
    _say(args, f"wrote {path}")
    return 0


def cmd_inspect(args) -> int:
    import json

    from ..data import format_inspection, inspect_dataset

    rep = inspect_dataset(args.data, out_dir=args.out, csv=args.csv, suffix=args.suffix, folder=args.folder)
    print(json.dumps(rep, indent=2) if args.json else format_inspection(rep))
    return 0


def cmd_demo(args) -> int:
    from ..demo import run_demo

    result = run_demo(data=args.data, out=args.out, download=args.download, sha256=args.sha256,
                      budget=args.budget, verbose=not args.quiet, seed=args.seed,
                      spent_before=seconds_since_process_start())
    print(f"demo finished: open {result.report_path}" if result.report_path else result.summary())
    return 0
