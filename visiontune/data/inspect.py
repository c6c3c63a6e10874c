"""Look at a dataset before training: class counts, image sizes, unreadable files, duplicates, odd formats.

:func:`inspect_dataset` returns a plain dict (JSON-serialisable); :func:`format_inspection` turns it
into text for the terminal. With ``out_dir`` it also saves width/height histograms as PNG, like the
lesson's ``plt.hist(row_sz)``.

Layouts understood:

* folders: ``path/<split>/<class>/*`` (``train``, ``valid``/``val``, ...) and unlabelled ``path/test/*``;
* a labels CSV (``csv=``, a path or a name under ``path``): first column the file id, second the
  label(s); images in ``path/<folder>/<id><suffix>``.

Folders named in ``exclude`` (``tmp`` and ``models`` by default: resize copies and weights) and hidden
files are not scanned.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np

from ..imaging.limits import DEFAULT_MAX_BYTES, IMAGE_EXTENSIONS, ImageLoadError, open_regular
from ..imaging.probe import default_io_workers, image_header, probe_image
from ..utils.text import nfc, printable

__all__ = ["inspect_dataset", "format_inspection"]

_EXT_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".gif": "GIF",
    ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PPM",
    ".pbm": "PPM", ".pnm": "PPM",
}


def _walk(root: Path, exclude: set[str], empty_dirs: list[str] | None = None) -> list[str]:
    """Image files under ``root`` (relative posix paths); symlinked folders are not followed (no loops).

    Folders with neither images nor sub-folders (e.g. an empty class folder) are added to ``empty_dirs``.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (rel_dir == Path(".") and d in exclude))
        n = len(out)
        for f in sorted(filenames):
            if f.startswith(".") or Path(f).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            out.append((rel_dir / f).as_posix())
        if empty_dirs is not None and len(out) == n and not dirnames and rel_dir != Path("."):
            empty_dirs.append(rel_dir.as_posix())
    return out


def _file_info(root: Path, rel: str, probe: bool, max_pixels) -> dict:
    p = root / rel
    info = {"file": rel, "bytes": None, "sha256": None, "format": None, "mode": None, "width": None,
            "height": None, "n_frames": 1, "error": None}
    try:  # regular files only, up to the byte cap: a FIFO or a link to /dev/zero is refused, not read forever
        h = hashlib.sha256()
        n = 0
        with open_regular(p, DEFAULT_MAX_BYTES) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
                if n > DEFAULT_MAX_BYTES:  # grew while being read
                    raise ImageLoadError(p, "file too large (it grew while being read)")
        info["bytes"], info["sha256"] = n, h.hexdigest()
    except ImageLoadError as e:
        info["error"] = e.reason
        return info
    except OSError:
        pass  # the header / probe below give the reason
    try:
        info.update({k: v for k, v in image_header(p).items()})
    except ImageLoadError as e:
        info["error"] = e.reason
        return info
    if probe:
        info["error"] = probe_image(p, max_pixels=max_pixels)
    return info


def _stats(v) -> dict:
    if not len(v):
        return {"min": None, "median": None, "max": None}
    a = np.asarray(v)
    return {"min": int(a.min()), "median": float(np.median(a)), "max": int(a.max())}


def _safe_relative(name: str) -> bool:
    """The same rule as ``from_csv``: no absolute paths, no ``..``, no Windows drive."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return False
    return not (len(p.parts[0]) >= 2 and p.parts[0][1] == ":")


def _id_key(name: str) -> str:
    """The same rule as ``paths.id_key``: ``im0``, ``./im0`` and ``.//im0`` name one file."""
    return PurePosixPath(name.replace("\\", "/")).as_posix()


def _read_csv_labels(csv_path: Path) -> tuple[dict[str, list[str]], list[str]]:
    """``({id: tags}, problems)``: one line per problem row (duplicate id, empty id or label, unsafe id)."""
    import pandas as pd

    if not csv_path.is_file():
        raise FileNotFoundError(f"labels CSV {csv_path} not found")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"labels CSV {csv_path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot parse labels CSV {csv_path}: {e}") from e
    if df.shape[1] < 2:
        raise ValueError(f"labels CSV {csv_path} needs two columns (file id, label); found {df.shape[1]} "
                         f"column(s): {[str(c) for c in df.columns]}. Is it comma-separated?")
    labels: dict[str, list[str]] = {}
    first_row: dict[str, tuple[int, str]] = {}
    problems: list[str] = []
    for r, (fid, lab) in enumerate(zip(df.iloc[:, 0], df.iloc[:, 1])):
        fid, tags = str(fid).strip(), str(lab).split()
        where = f"row {r} (line {r + 2})"
        if not fid:
            problems.append(f"{where}: empty file id")
            continue
        if not _safe_relative(fid):
            problems.append(f"{where}: file id {fid!r} points outside the image folder; it is refused")
            continue
        key = _id_key(fid)
        if key in labels:
            first = first_row[key]
            problems.append(f"{where}: duplicate file id {fid!r} (the same file as row {first[0]}, {first[1]!r})"
                            if first[1] != fid else f"{where}: duplicate file id {fid!r} (first in row {first[0]})")
            continue
        if not tags:
            problems.append(f"{where}: empty label for {fid!r}")
        labels[key], first_row[key] = tags, (r, fid)
    return labels, problems


def _save_hist(values, title: str, xlabel: str, dest: Path) -> str:
    from matplotlib.figure import Figure

    from visiontune.utils.atomic import atomic_write
    from visiontune.utils.display import plain_text

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=10)
    ax.set_title(plain_text(title))
    ax.set_xlabel(plain_text(xlabel))
    ax.set_ylabel("images")
    fig.tight_layout()
    with atomic_write(dest, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return str(dest)


def inspect_dataset(path, out_dir=None, csv=None, suffix: str = "", folder: str = "train",
                    exclude=("tmp", "models"), probe: bool = True, max_workers: int | None = None,
                    max_pixels: int | None = None, verbose: bool = False) -> dict:
    """Scan the images under ``path`` and report on them.

    Args:
        path: the data folder.
        out_dir: where to save ``width_hist.png`` / ``height_hist.png`` (none saved when ``None``).
        csv: labels CSV (path, or name under ``path``) for CSV layouts; class counts come from it
            and ``missing`` lists rows whose ``folder/<id><suffix>`` file does not exist.
        suffix, folder: as in ``ImageClassifierData.from_csv``.
        exclude: top-level folders not scanned.
        probe: fully decode every file to find truncated ones (slower than reading headers).
        max_pixels: pixel cap for the decode check (``None``: no cap here; over-size files are
            still listed under ``large``).
        verbose: print :func:`format_inspection` of the result.

    Returns a dict with ``path``, ``n_files``, ``splits`` ({split: {class: count}}), ``class_counts``
    (training split, or the CSV), ``sizes`` ({"width"|"height": {min, median, max}}), ``formats``
    ({format: count}), ``modes``, ``unreadable`` ([{file, reason}]), ``duplicates`` ([[files with
    identical bytes]]), ``odd_formats`` ([{file, format, expected}]: a format that differs from the
    majority, or content not matching the suffix, e.g. a GIF among JPEGs), ``animated``, ``small``
    (shorter side < 32 px), ``missing`` (CSV rows without a file), ``csv_problems`` (one line per CSV row
    with a duplicate id, an empty id or label, or an id pointing outside the folder, which is never
    looked up), ``empty_folders`` (folders holding no images and no sub-folders, e.g. an empty class),
    ``histograms`` (PNG paths).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    empty_folders: list[str] = []
    files = _walk(root, set(exclude), empty_folders)
    workers = max_workers or default_io_workers()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        infos = list(pool.map(lambda f: _file_info(root, f, probe, max_pixels), files))

    # class counts
    splits: dict[str, Counter] = defaultdict(Counter)
    missing: list[str] = []
    csv_problems: list[str] = []
    class_counts: Counter = Counter()
    if csv is not None:
        csv_path = Path(csv)
        if not csv_path.is_absolute() and not csv_path.exists():
            csv_path = root / csv_path
        labels, csv_problems = _read_csv_labels(csv_path)
        present = set(files)
        for fid, tags in labels.items():
            rel = PurePosixPath(folder, fid + suffix).as_posix()
            if rel not in present:
                missing.append(rel)
            for t in tags:
                class_counts[t] += 1
        splits[folder] = Counter(class_counts)
        for f in files:
            parts = PurePosixPath(f).parts
            if parts[0] != folder:
                splits[parts[0] if len(parts) > 1 else "."]["(unlabelled)"] += 1
    else:
        for f in files:
            parts = PurePosixPath(f).parts
            if len(parts) >= 3:
                splits[parts[0]][nfc(parts[1])] += 1  # one class however its name is typed (NFC)
            elif len(parts) == 2:
                splits[parts[0]]["(unlabelled)"] += 1
            else:
                splits["."]["(unlabelled)"] += 1
        trn = next((s for s in ("train", "training", "trn") if s in splits), None)
        class_counts = splits[trn] if trn else Counter()

    ok = [i for i in infos if i["error"] is None]
    widths = [i["width"] for i in infos if i["width"] is not None]
    heights = [i["height"] for i in infos if i["height"] is not None]
    formats = Counter(i["format"] for i in infos if i["format"])
    modes = Counter(i["mode"] for i in infos if i["mode"])
    majority = formats.most_common(1)[0][0] if formats else None
    odd = []
    for i in infos:
        if not i["format"]:
            continue
        expected = _EXT_FORMATS.get(PurePosixPath(i["file"]).suffix.lower())
        if expected and i["format"] != expected:
            odd.append({"file": i["file"], "format": i["format"], "expected": expected,
                        "why": f"content is {i['format']} but the name says {expected}"})
        elif i["format"] != majority:
            odd.append({"file": i["file"], "format": i["format"], "expected": majority,
                        "why": f"{i['format']} among {formats[majority]} {majority} files"})
    by_hash = defaultdict(list)
    for i in infos:
        if i["sha256"] and i["bytes"]:
            by_hash[i["sha256"]].append(i["file"])
    duplicates = sorted(sorted(v) for v in by_hash.values() if len(v) > 1)
    report = {
        "path": str(root),
        "n_files": len(infos),
        "n_readable": len(ok),
        "splits": {s: dict(sorted(c.items())) for s, c in sorted(splits.items())},
        "class_counts": dict(sorted(class_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "sizes": {"width": _stats(widths), "height": _stats(heights)},
        "formats": dict(formats.most_common()),
        "modes": dict(modes.most_common()),
        "unreadable": [{"file": i["file"], "reason": i["error"]} for i in infos if i["error"] is not None],
        "duplicates": duplicates,
        "odd_formats": odd,
        "animated": [i["file"] for i in infos if (i["n_frames"] or 1) > 1],
        "small": [i["file"] for i in infos if i["width"] is not None and min(i["width"], i["height"]) < 32],
        "missing": missing,
        "csv_problems": csv_problems,
        "empty_folders": empty_folders,
        "histograms": [],
    }
    if out_dir is not None and widths:
        out = Path(out_dir)
        report["histograms"] = [
            _save_hist(widths, "image widths (row_sz)", "width (px)", out / "width_hist.png"),
            _save_hist(heights, "image heights (col_sz)", "height (px)", out / "height_hist.png"),
        ]
    if verbose:
        print(format_inspection(report))
    return report


def _fmt_stats(s: dict) -> str:
    if s["min"] is None:
        return "n/a"
    return f"min {s['min']}, median {s['median']:g}, max {s['max']}"


def format_inspection(report: dict, max_items: int = 20) -> str:
    """Human-readable text for a :func:`inspect_dataset` report."""
    lines = [f"{report['path']}: {report['n_files']} image files, {report['n_readable']} readable"]

    def listing(title, items):
        if not items:
            return
        lines.append(f"{title} ({len(items)}):")
        for it in items[:max_items]:
            lines.append(f"  {it}")
        if len(items) > max_items:
            lines.append(f"  ... and {len(items) - max_items} more")

    for split, counts in report["splits"].items():
        total = sum(counts.values())
        lines.append(f"{split}: {total} files in {len(counts)} class(es)")
        shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for c, n in shown[:max_items]:
            lines.append(f"  {c:<30} {n}")
        if len(shown) > max_items:
            rest = shown[max_items:]
            lines.append(f"  ... and {len(rest)} more classes (smallest: {rest[-1][0]} with {rest[-1][1]})")
    lines.append(f"width:  {_fmt_stats(report['sizes']['width'])}")
    lines.append(f"height: {_fmt_stats(report['sizes']['height'])}")
    lines.append("formats: " + ", ".join(f"{k} {v}" for k, v in report["formats"].items()))
    listing("unreadable files", [f"{u['file']}: {u['reason']}" for u in report["unreadable"]])
    listing("exact duplicates (identical bytes)", [" = ".join(d) for d in report["duplicates"]])
    listing("odd formats", [f"{o['file']}: {o['why']}" for o in report["odd_formats"]])
    listing("animated images (first frame is used)", report["animated"])
    listing("tiny images (< 32 px)", report["small"])
    listing("CSV rows with no file", report["missing"])
    listing("CSV problems", report.get("csv_problems", []))
    listing("folders with no images (an empty class?)", report.get("empty_folders", []))
    if report["histograms"]:
        lines.append("histograms: " + ", ".join(report["histograms"]))
    # non-UTF-8 file names hold surrogates: show their bytes as \\xff so any terminal can print them; control
    # characters in a file or class name (ESC sequences, newlines) are escaped, so each line stays one line
    return "\n".join(printable(line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
                     for line in lines)
