"""The ``visiontune`` command line: train, predict, submit, export, report, inspect, demo.

Every command is one call in the Python API:

=================  ===============================================================
command            Python
=================  ===============================================================
``train``          ``visiontune.run.recipe.train_run(TrainConfig(...))``
``predict``        ``visiontune.infer.predict.predict_paths(model, paths)``
``submit``         ``visiontune.infer.submit.make_submission(model, test_dir, out)``
``export``         ``visiontune.run.exported.export_run(run_dir, fmt)``
``report``         ``visiontune.run.write_report(run_dir)``
``inspect``        ``visiontune.data.inspect_dataset(path)``
``demo``           ``visiontune.demo.run_demo()``
=================  ===============================================================

Exit codes: 0 success; 1 a user mistake or a failed run (one line ``visiontune: error: ...``, no
traceback; ``--verbose`` shows it); 2 bad command-line usage; 130 interrupted (Ctrl-C), with the
command that resumes.

The package: :mod:`.parser` (``build_parser``: commands, options, examples), :mod:`.commands`
(``cmd_<command>``: each command's call), and here ``main`` (process-wide settings, the one-line errors).
"""
from __future__ import annotations

import errno
import os
import sys
import traceback

from ..utils.text import printable
from .commands import (  # noqa: F401 (the commands: main runs cmd_<command>; the rest: API)
    PYTHON_BOOT_MAX_S,
    UsageError,
    cmd_demo,
    cmd_export,
    cmd_inspect,
    cmd_predict,
    cmd_report,
    cmd_submit,
    cmd_train,
    seconds_since_process_start,
)
from .parser import PROG, build_parser

# OSErrors that mean something about the user's files or machine, not a bug: one line, no traceback
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                errno.EEXIST, errno.ENAMETOOLONG, errno.EDQUOT, errno.EMFILE, errno.ELOOP, errno.EIO}


def _is_user_error(e: BaseException) -> bool:
    """Known user mistakes print as one line; anything else (a KeyError, a TypeError, an OSError with no
    file behind it) is an internal error: one line that says so, and --verbose shows the traceback."""
    from ..imaging.limits import ImageLoadError
    from ..models.backbone import WeightsNotAvailable
    from ..train.loop import TrainingDiverged

    if isinstance(e, (ValueError, WeightsNotAvailable, ImageLoadError, TrainingDiverged)):
        return True
    if not isinstance(e, OSError):
        return False
    # a missing or unwritable file or folder, a message of ours (no errno), a known errno with a file or not
    return (isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError))
            or e.errno is None or e.filename is not None or e.errno in _USER_ERRNOS)


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
        return globals()[f"cmd_{args.command}"](args)  # this package's cmd_<command>, looked up as it runs
    except UsageError as e:
        parser.exit(2, f"{PROG} {args.command}: error: {e}\n")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI boundary: one line, no traceback
        from ..run.recipe import TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            from ..train.distributed import is_main_process

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
