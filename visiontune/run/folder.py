"""``RunFolder``: the one reader and writer of a run folder (``runs/NAME``, written by ``visiontune train``).

It decides whether a folder may hold a run, and keeps what it is told about it honest:

* **Whose folder.** ``train`` writes only into a new or empty folder, or into a folder that is
  recognisably a visiontune run: to continue it (``--resume``) or, when asked (``--overwrite``), to
  replace that run's own files. A folder holding anything else is refused, as are system roots
  (``/``, the home folder itself, top-level folders) and folders inside a data set (the one being
  trained on, or any folder that looks like one: ``train/`` beside ``valid/``, ``val/``, ``test/`` or
  a labels CSV). It never deletes a file it did not write in this run, except the files of the
  earlier run that ``--overwrite`` replaces, by their names.
* **One writer.** An exclusive lock (``.visiontune.lock``, held through ``filelock`` for the run's
  whole life) and an owner record beside it (``.visiontune.owner.json``: pid, host, start time), so a
  second run into the same folder stops at once with one line naming the first. Both files go when
  the run ends.
* **No trust in what the folder says.** Every path read from ``progress.json`` / ``config.json`` is
  confined to the run folder or to the data folder it names (see :meth:`RunFolder.weights`,
  :func:`confine_to`); ``progress.json`` is read into a checked :class:`~visiontune.run.progress.Progress`.
* **What a report shows, read safely.** :meth:`RunFolder.read_image` decodes the run's own images and
  :meth:`RunFolder.data_image` the data folder's (only names that stay inside it: :func:`inside_data`)
  through the one decode path (raster formats only); :func:`read_csv_rows` undoes the spreadsheet-safe
  cells of the run's CSVs. :mod:`visiontune.run.reporting` builds the report's ``RunRecords`` with them.
* **Nothing left behind by a false start.** A run that fails before training (bad data path, unknown
  architecture, weights not available offline) removes what it wrote and the folders it created
  (:meth:`RunFolder.abandon`); a folder that existed before is left as it was.

Under torchrun only rank 0 touches the folder: the other ranks' calls are no-ops.
"""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

from ..utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..utils.errors import first_line
from ..utils.text import from_spreadsheet_safe
from .progress import WEIGHTS_FILE, Progress, ProgressError

LOCK_NAME = ".visiontune.lock"
OWNER_NAME = ".visiontune.owner.json"
DEMO_MARKER = ".visiontune-demo"
MARKERS = (LOCK_NAME, OWNER_NAME, DEMO_MARKER)  # a folder holding only these counts as empty

# the files a run writes (a finished run holds these and progress.json)
RUN_FILES = ("config.json", "classes.json", "preprocessing.json", "metrics.csv", "metrics.json", "lr_find.json",
             "schedule.json", "best.safetensors", "checkpoint.pt", "val_predictions.csv", "data_summary.json",
             "aug_previews.png", "model.onnx", "model.json", "report.html")
# what --overwrite removes of an earlier run: its files by name (and weights_after_<step>.safetensors)
EARLIER_RUN_FILES = (*RUN_FILES, "progress.json", "model.pt", "report.png", "checkpoint.pt.damaged")
# the atomic writer's temporary files (utils.atomic: mkstemp(prefix=".NAME.", suffix=".tmp")) of a run's files
_TEMP_NAME = re.compile(r"\.(.+)\.[A-Za-z0-9_]{6,16}\.tmp")
_TEMP_OWNERS = frozenset((*EARLIER_RUN_FILES, "labels.csv", OWNER_NAME))
_WEIGHTS_AFTER = re.compile(r"weights_after_[A-Za-z0-9_]+\.safetensors")
DATA_KEYS = ("data", "data_path", "data_dir", "path")  # config.json's name for the data folder (older runs too)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class RunFolderError(ValueError):
    """The folder may not be used as asked (a one-line message saying why and what to do)."""


class RunFolderBusy(RunFolderError):
    """Another run holds the folder's lock."""


def _is_main() -> bool:
    from ..train import distributed

    return distributed.is_main_process()


def _read_json(path: Path, expect: type = dict):
    """A JSON object (or list) from the run folder, or a ValueError that names the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {first_line(e)} (damaged?); start a new run") from None
    if not isinstance(value, expect):
        raise ValueError(f"cannot read {path}: expected a JSON {expect.__name__}, found {type(value).__name__} "
                         "(damaged?); start a new run")
    return value


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine_to(value, roots: list[Path], what: str, where: str) -> Path:
    """``value`` (a path read from a run folder) as a real path inside one of ``roots``, or a ValueError.

    Relative values are taken from the first root; symbolic links are followed before the check.
    """
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError(f"{where}: {what} is {value!r}, not a path (damaged or edited?); start a new run")
    p = Path(value)
    real = (p if p.is_absolute() else roots[0] / p).resolve()
    if not any(_inside(real, Path(r).resolve()) for r in roots):
        raise ValueError(f"{where}: {what} {value!r} leads outside {' and '.join(str(r) for r in roots)}; a run "
                         "reads and writes only there (edited or crafted?). Start a new run")
    return real


def inside_data(data_dir: Path | None, fname: str) -> Path | None:
    """``data_dir / fname`` when ``fname`` is a relative path that stays inside the data folder (links
    followed); ``None`` otherwise: val_predictions.csv cannot make the report embed any other file."""
    if not fname or data_dir is None or "\0" in fname:
        return None
    rel = Path(fname.replace("\\", "/"))
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        return None
    base = os.path.realpath(data_dir)
    real = os.path.realpath(data_dir / rel)
    return Path(real) if real.startswith(base.rstrip(os.sep) + os.sep) else None


def read_csv_rows(path) -> list[dict]:
    """The rows of a CSV a run wrote (metrics.csv, val_predictions.csv) as dicts, their spreadsheet-safe
    cells undone. Raises OSError, csv.Error or UnicodeDecodeError."""
    with open(path, newline="", encoding="utf-8") as f:  # our CSVs are spreadsheet-safe: undo it
        return [{(from_spreadsheet_safe(k) if isinstance(k, str) else k): (from_spreadsheet_safe(v) if isinstance(v, str) else v)
                 for k, v in row.items()} for row in csv.DictReader(f)]


def looks_like_dataset(folder: Path) -> str | None:
    """Why ``folder`` looks like a data set (``train/`` beside ``valid/``, ``val/``, ``test/`` or a CSV), or None."""
    try:
        if not (folder / "train").is_dir():
            return None
        for name in ("valid", "val", "test"):
            if (folder / name).is_dir():
                return f"it holds train/ and {name}/"
        csvs = sorted(p.name for p in folder.glob("*.csv") if p.is_file())
        if csvs:
            return f"it holds train/ and {csvs[0]}"
    except OSError:
        return None
    return None


def system_root(real: Path) -> str | None:
    """Why ``real`` is no place for a run's files (the filesystem root, a top-level folder, the home folder)."""
    if real == Path(real.anchor):
        return "the filesystem root"
    home = Path.home().resolve()
    if real == home:
        return "your home folder itself"
    if real == home.parent:
        return "the folder of home folders"
    if real.parent == Path(real.anchor):
        return f"a top-level system folder ({real})"
    return None


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a visiontune run: a config.json with data and arch, and a progress.json."""
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and "data" in cfg and "arch" in cfg and (path / "progress.json").is_file()


def _owner_line(path: Path) -> str:
    try:
        o = json.loads((path / OWNER_NAME).read_text())
        return f"pid {int(o['pid'])} on {o['host']}, started {o['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its owner record is not written yet or unreadable"


class RunFolder:
    """One run's folder: use :meth:`for_new_run` or :meth:`for_resume`, then :meth:`open` ... :meth:`close`."""

    def __init__(self, path, data=None, *, earlier_run: bool = False):
        self.path = Path(path)
        self.data = Path(data).resolve() if data else None
        self.earlier_run = earlier_run  # --overwrite: the folder holds a run whose files are replaced
        self.written: set[str] = set()  # names written in this run
        self._created: list[Path] = []  # folders this run created (removed again by abandon())
        self._lock = None

    # -- deciding whether a folder may be used ------------------------------------------------------------------
    @classmethod
    def for_new_run(cls, out, data, *, overwrite: bool = False, image_dirs=()) -> RunFolder:
        """Check that a new run may write into ``out`` (see the module docstring); nothing is written yet.

        ``image_dirs``: folders whose files are read as data (a run inside one would become a class).
        """
        out = Path(out)
        real = out.resolve()
        why = system_root(real)
        if why:
            raise RunFolderError(f"--out {out} is {why}: a run writes a dozen files there; give a folder of its "
                                 "own, e.g. --out runs/NAME")
        for images in image_dirs:
            images = Path(images).resolve()
            if images.is_dir() and _inside(real, images):
                raise RunFolderError(f"--out {out} is inside the image folder {images}: the run's files would be read "
                                     "as data. Put the run elsewhere (the default is runs/<data name>)")
        root = Path(data).resolve() if data else None
        if root is not None and _inside(real, root):
            raise RunFolderError(f"--out {out} is inside the data folder {root}: a run never writes into its data. "
                                 "Put the run elsewhere (the default is runs/<data name>)")
        for folder in (real, *real.parents):
            why = looks_like_dataset(folder)
            if why:
                raise RunFolderError(f"--out {out} is inside {folder}, which looks like a data set ({why}): a run "
                                     "never writes into data. Put the run elsewhere (the default is runs/<data name>)")
        if out.exists() or out.is_symlink():
            if not out.is_dir():
                raise RunFolderError(f"--out {out} exists and is not a folder; give a folder name, e.g. runs/NAME")
            if is_run_folder(out):
                if not overwrite:
                    raise RunFolderError(f"run folder {out} already holds a run; use --resume {out} to continue it, "
                                         "--overwrite to replace it, or another --out")
                return cls(out, data, earlier_run=True)
            others = sorted(p.name for p in out.iterdir() if p.name not in MARKERS)
            if others:
                shown = ", ".join(others[:3]) + (f", ... ({len(others)} in all)" if len(others) > 3 else "")
                raise RunFolderError(f"--out {out} already holds files that are not a visiontune run ({shown}); "
                                     "train writes only into a new or empty folder: give another --out")
        return cls(out, data)

    @classmethod
    def for_resume(cls, path) -> RunFolder:
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "progress.json").is_file():
            raise FileNotFoundError(f"{path} is not a resumable run folder (config.json / progress.json missing)")
        return cls(path)

    # -- the lock: one writer for the run's whole life ----------------------------------------------------------
    def open(self) -> RunFolder:
        """Create the folder (remembering what was created), take the lock, write the owner record."""
        if not _is_main():
            return self
        import filelock

        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        self._created = missing  # deepest first
        lock = filelock.FileLock(str(self.path / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunFolderBusy(f"run folder {self.path} is in use by another visiontune run ({_owner_line(self.path)}); "
                                "wait for it to end, or give another --out") from None
        self._lock = lock
        self.remove_stale_temporaries()
        argv = " ".join(sys.argv[:1] + sys.argv[1:])[:500]
        atomic_write_json(self.path / OWNER_NAME, {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "command": argv})
        return self

    def close(self) -> None:
        """Remove the owner record and the lock file, and release the lock."""
        if self._lock is None:
            return
        self.remove_stale_temporaries()
        for name in (OWNER_NAME, LOCK_NAME):  # removed while still held: no one else can own them meanwhile
            try:
                (self.path / name).unlink()
            except OSError:
                pass
        self._lock.release()
        self._lock = None

    def remove_stale_temporaries(self) -> list[str]:
        """Remove the atomic writer's temporary files of this run's own files (``.checkpoint.pt.k3j_a9x2.tmp``),
        left by a run killed (``kill -9``, power loss) in the middle of a write. Called with the lock held, when
        the run starts or resumes and when it ends: no writer of this folder is alive then. Only names of that
        exact pattern for a file a run writes are removed; returns them."""
        removed = []
        if not _is_main():
            return removed
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            return removed
        for e in entries:
            m = _TEMP_NAME.fullmatch(e.name)
            if not m or not (m.group(1) in _TEMP_OWNERS or _WEIGHTS_AFTER.fullmatch(m.group(1))):
                continue
            try:
                if e.is_file(follow_symlinks=False):
                    os.unlink(e.path)
                    removed.append(e.name)
            except OSError:
                pass
        return removed

    def abandon(self) -> None:
        """A run that failed before training: remove what it wrote, then the folders it created (if empty)."""
        if not _is_main():
            return
        for name in sorted(self.written):
            try:
                (self.path / name).unlink()
            except OSError:
                pass
        self.written.clear()
        self.close()
        for folder in self._created:  # deepest first; only while empty
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def clear_earlier_run(self) -> list[str]:
        """``--overwrite``: remove the earlier run's own files (by name); every other file stays."""
        if not (self.earlier_run and _is_main()):
            return []
        names = [n for n in EARLIER_RUN_FILES if (self.path / n).is_file()]
        try:  # the earlier run's copy of its labels CSV, where its config.json says it made one
            if json.loads((self.path / "config.json").read_text()).get("csv_copy") == "labels.csv":
                names.append("labels.csv")
        except (OSError, ValueError, AttributeError):
            pass
        names = [n for n in names if (self.path / n).is_file()]
        names += sorted(p.name for p in self.path.glob("weights_after_*.safetensors") if WEIGHTS_FILE.fullmatch(p.name))
        for n in names:
            (self.path / n).unlink()
        self.earlier_run = False
        return names

    # -- paths ----------------------------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        """The path of one of the run's own files (a plain name: no folders, no ``..``)."""
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a run file name")
        return self.path / name

    def weights(self, name) -> Path:
        """``weights_after_<step>.safetensors`` named by progress.json, confined to this folder."""
        if not isinstance(name, str) or not WEIGHTS_FILE.fullmatch(name):
            raise ValueError(f"{self.path / 'progress.json'}: weights_file {name!r} is not a file this run writes; "
                             "edited or crafted? Start a new run")
        path = self.file(name)
        if path.is_symlink() or not _inside(path.resolve(), self.path.resolve()):
            raise ValueError(f"{path} is a link out of the run folder; a run reads only its own files. Start a new run")
        return path

    def note_written(self, name: str) -> None:
        self.written.add(name)

    # -- reading ----------------------------------------------------------------------------------------------------
    def read_json(self, name: str, expect: type = dict):
        return _read_json(self.file(name), expect)

    def read_image(self, name: str):
        """``(bytes, decoded RGB image)`` of one of the run's own image files (``aug_previews.png``): a regular
        file within the byte cap, a raster format (an EPS under this name never reaches Ghostscript), within
        the pixel cap (``imaging.decode``). Raises ``ImageLoadError``."""
        from ..imaging.decode import decode_bytes
        from ..imaging.limits import read_bytes

        path = self.file(name)
        data = read_bytes(path)
        return data, decode_bytes(data, str(path))

    def data_dir(self, config) -> Path | None:
        """The data folder ``config`` (config.json) names: absolute, or relative to where train ran or to the
        run folder."""
        if not isinstance(config, dict):
            return None
        for key in DATA_KEYS:
            v = config.get(key)
            if isinstance(v, str) and v:
                p = Path(v).expanduser()
                if p.is_absolute():
                    return p
                for base in (Path.cwd(), self.path):  # relative to where train ran, or to the run folder
                    if (base / p).is_dir():
                        return base / p
                return p
        return None

    def data_image(self, data_dir: Path | None, fname: str, draft: int | None = None):
        """The image ``fname`` (a name val_predictions.csv gives) of the data folder, decoded through the one
        decode path (regular files, raster formats only, caps); ``None`` when ``fname`` leads outside the data
        folder (:func:`inside_data`). Raises ``ImageLoadError``."""
        from ..imaging.decode import open_image

        path = inside_data(data_dir, fname)
        return open_image(path, draft=draft) if path is not None else None

    def read_progress(self) -> Progress:
        state = self.read_json("progress.json")
        try:
            return Progress.from_dict(state, str(self.file("progress.json")))
        except ProgressError as e:
            raise ValueError(str(e)) from None

    # -- writing (rank 0 only; every name written is remembered) ----------------------------------------------------
    def write_json(self, name: str, obj) -> None:
        if _is_main():
            atomic_write_json(self.file(name), obj)
            self.written.add(name)

    def write_text(self, name: str, text: str) -> None:
        if _is_main():
            atomic_write_text(self.file(name), text)
            self.written.add(name)

    def write_bytes(self, name: str, data: bytes) -> None:
        if _is_main():
            atomic_write_bytes(self.file(name), data)
            self.written.add(name)

    def save_progress(self, progress: Progress) -> None:
        self.write_json("progress.json", progress.to_dict())

    def remove(self, name: str) -> None:
        """Remove a file this run wrote (in this session, or a ``weights_after_*`` of this run before a resume)."""
        if not _is_main():
            return
        if name not in self.written and not WEIGHTS_FILE.fullmatch(name):
            raise ValueError(f"refusing to remove {self.path / name}: this run did not write it")
        self.file(name).unlink(missing_ok=True)
        self.written.discard(name)

    def set_aside(self, name: str, why: str, then: str) -> Path:
        """Move a damaged file to ``<name>.damaged`` with a warning on stderr (shown with --quiet too)."""
        src = self.file(name)
        aside = self.file(name + ".damaged")
        if _is_main():
            os.replace(src, aside)
            print(f"visiontune: warning: {why}; moved it to {aside.name} and {then}", file=sys.stderr, flush=True)
        return aside
