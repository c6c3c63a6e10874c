"""Before the first step: the run folder chosen and checked, the config read back on ``--resume`` (every
path in it confined), the data built from the config, and what ``config.json`` records.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..data import ImageClassifierData, get_cv_idxs
from ..data.csv_labels import read_label_csv
from ..transforms import tfms_from_model, transforms_side_on, transforms_top_down
from ..utils.errors import first_line
from .config import TrainConfig
from .folder import RunFolder, confine_to
from .progress import Progress
from .ranks import log

LABELS_COPY = "labels.csv"  # the run's copy of a labels CSV from outside the data folder

__all__ = ["LABELS_COPY", "build_data", "choose_folder", "default_run_dir", "images_per_class", "labels_csv_path",
           "read_resumed", "recorded_config"]


def default_run_dir(data: str) -> Path:
    name = Path(data).resolve().name or "run"
    base = Path("runs") / name
    if not base.exists():
        return base
    i = 2
    while (Path("runs") / f"{name}-{i}").exists():
        i += 1
    return Path("runs") / f"{name}-{i}"


def build_data(cfg: TrainConfig):
    """``ImageClassifierData`` for the config (folders, or a labels CSV with a ``get_cv_idxs`` split)."""
    aug = {"side_on": transforms_side_on, "top_down": transforms_top_down, "none": None}[cfg.aug]
    tfms = tfms_from_model(cfg.arch, cfg.size, aug_tfms=aug, max_zoom=cfg.max_zoom)
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if cfg.csv:
        csv_path = labels_csv_path(cfg)
        if not csv_path.is_file():
            raise FileNotFoundError(f"labels CSV {csv_path} not found")
        n = len(read_label_csv(csv_path, skip_header=True)[0])  # rows as from_csv reads them (pandas)
        # fastai's fold 4 is the last of five at val_pct=0.2; a larger share takes the last fold that fits
        val_idxs = get_cv_idxs(n, cv_idx=min(4, int(1 / cfg.val_pct) - 1), val_pct=cfg.val_pct)
        data = ImageClassifierData.from_csv(root, cfg.folder, csv_path, bs=cfg.bs, tfms=tfms, val_idxs=val_idxs,
                                            suffix=cfg.suffix, test_name=cfg.test_name, continuous=cfg.regression,
                                            num_workers=cfg.num_workers)
        if cfg.multi_label and not data.is_multi:
            raise ValueError(f"--multi-label: {csv_path.name} has one label per row; multi-label rows hold "
                             "space-separated tags")
        if data.is_multi and not cfg.multi_label:  # fastai's from_csv splits labels on spaces: say so
            raise ValueError(f"{csv_path.name}: some labels hold spaces, which make them multi-label tags "
                             f"({', '.join(map(str, data.classes[:4]))}, ...). Pass --multi-label if they are tags; "
                             "for class names with spaces, write them without the space (golden_retriever)")
    else:
        data = ImageClassifierData.from_paths(root, bs=cfg.bs, tfms=tfms, val_name=cfg.val_name,
                                              test_name=cfg.test_name, num_workers=cfg.num_workers)
    if len(data.val_ds) == 0:
        raise ValueError(f"no validation images under {root}")
    return data


def labels_csv_path(cfg: TrainConfig) -> Path:
    """The labels CSV a config names: a path as given (from the working folder), else a name under the data."""
    csv_path = Path(cfg.csv)
    if not csv_path.is_absolute() and not csv_path.exists():
        csv_path = Path(cfg.data) / csv_path
    return csv_path


def image_dirs(cfg: TrainConfig) -> list[Path]:
    """Folders whose files are read as data: a run folder inside one would become a class (or test images).
    A CSV layout reads only the ids it lists, but still lists its test folder."""
    root = Path(cfg.data).resolve()
    listed = (cfg.test_name,) if cfg.csv else ("train", cfg.val_name, "valid", "val", cfg.test_name)
    return [root / n for n in dict.fromkeys(n for n in listed if n and n != ".")]


def choose_folder(config: TrainConfig | None, resume) -> RunFolder:
    """The run folder, checked (nothing written yet): a new run's --out, or the run to resume."""
    if resume is not None:
        return RunFolder.for_resume(resume)
    if config is None:
        raise ValueError("train_run needs a TrainConfig or resume=RUN")
    config.validate()
    run_dir = Path(config.out) if config.out else default_run_dir(config.data)
    return RunFolder.for_new_run(run_dir, config.data, overwrite=config.overwrite, image_dirs=image_dirs(config))


def read_resumed(folder: RunFolder, config: TrainConfig | None) -> tuple[TrainConfig, Progress]:
    """The resumed run's config and progress, read under its lock; every path in them confined."""
    saved = folder.read_json("config.json")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    # a value a run records as null where it was not used (val_name of a CSV layout) takes the default
    kept = {k: v for k, v in saved.items() if k in fields and not (v is None and fields[k].default is not None
                                                                     and k != "data")}
    console = kept.pop("console", None)  # the mode of the session that wrote it (the caller's applies, if given)
    if "verbose" not in kept:  # written since config.json records the console mode
        kept["verbose"], kept["console"] = console != "quiet", "verbose" if console == "verbose" else "normal"
    try:
        cfg = TrainConfig(**kept)
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot resume from {folder.file('config.json')}: {first_line(e)} (damaged or edited?); "
                         "start a new run") from None
    where = str(folder.file("config.json"))
    data = confine_to(cfg.data, [Path(cfg.data)], "data", where) if cfg.data else None
    if cfg.test_name is not None:
        confine_to(cfg.test_name, [data], "test_name", where)
    if cfg.csv:  # the run's copy of a CSV from outside the data folder, else one inside the data folder
        copy = folder.file(LABELS_COPY)
        if saved.get("csv_copy") == LABELS_COPY and copy.is_file() and not copy.is_symlink():
            cfg.csv = str(copy.resolve())
        else:
            p = Path(cfg.csv)
            cfg.csv = str(confine_to(cfg.csv, [data], "csv", where) if not p.is_absolute() else
                          confine_to(cfg.csv, [data, folder.path], "csv", where))
    if config is not None:
        cfg.verbose, cfg.console = config.verbose, config.console
    if config is not None and config.cache_dir:  # the caller's cache (--cache-dir with --resume)
        cfg.cache_dir = config.cache_dir
    elif cfg.cache_dir:  # the recorded cache only where a run may write: inside the run or the data folder
        try:
            confine_to(cfg.cache_dir, [folder.path, data], "cache_dir", where)
        except ValueError:
            log(cfg, f"note: config.json's cache_dir {cfg.cache_dir} is outside the run and data folders; "
                      "using the default cache (--cache-dir DIR with --resume to choose one)")
            cfg.cache_dir = None
    folder.data = data
    return cfg, folder.read_progress()


def recorded_config(cfg: TrainConfig, data, kind: str, run_dir: Path) -> dict:
    """config.json: the settings as used (the validation folder found, the console mode), not as given."""
    from ..data.paths import _resolve_val_name

    d = cfg.to_dict()
    d.pop("verbose")
    d["console"] = "quiet" if not cfg.verbose else cfg.console
    d["val_name"] = None if cfg.csv else _resolve_val_name(Path(cfg.data), cfg.val_name)
    if cfg.csv:  # the file read, whatever the working folder
        d["csv"] = str(labels_csv_path(cfg).resolve())
    return {**d, "data": str(Path(cfg.data).resolve()), "kind": kind, "run_dir": str(run_dir)}


def images_per_class(data, kind: str) -> float:
    """Median training images of a class (single label), else training images per output."""
    y = np.asarray(data.trn_y)
    n_out = len(data.classes) if data.classes else int(data.c)
    if kind == "single" and y.ndim == 1 and len(y):
        counts = np.bincount(y.astype(np.int64), minlength=max(n_out, 1))
        return float(np.median(counts[counts > 0]))
    return len(y) / max(n_out, 1)


def short_list(names: list, n: int = 6) -> str:
    return "[" + ", ".join(map(str, names[:n])) + (f", ... ({len(names)} in all)" if len(names) > n else "") + "]"
