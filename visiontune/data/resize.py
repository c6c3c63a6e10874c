"""Shrunk copies of a dataset's images, keyed so a stale copy is never served.

Layout: ``dst_root/<relpath>`` (same relative names as the sources) plus ``dst_root/.visiontune-resize.json``,
a manifest mapping each relpath to the source's ``[size, mtime_ns]`` and the settings used. A copy is
(re)written when it is missing, its source's size or mtime changed, or the settings (target size,
quality) differ. Each copy is written atomically; a file lock serialises concurrent runs on one folder.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import Image

from visiontune.utils.atomic import atomic_write, atomic_write_json

from ..imaging.decode import load_image
from ..imaging.limits import DEFAULT_MAX_PIXELS
from ..imaging.probe import default_io_workers, image_header

__all__ = ["resize_files", "resize_one", "MANIFEST_NAME"]

MANIFEST_NAME = ".visiontune-resize.json"
_MANIFEST_VERSION = 1
_WRITABLE = {"JPEG", "PNG", "WEBP", "BMP", "TIFF"}


def _format_for(name: str) -> str:
    fmt = Image.registered_extensions().get(Path(name).suffix.lower())
    return fmt if fmt in _WRITABLE else "PNG"


def resize_one(src: Path, dst: Path, targ: int, quality: int = 92,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Write ``dst``: ``src`` with its short side scaled to ``targ`` (aspect kept; never enlarged)."""
    img = load_image(src, target_size=targ, max_pixels=max_pixels)
    w, h = img.size
    if min(w, h) <= targ:
        header = image_header(src)  # the same raster-only opener as every decode
        full = (header["width"], header["height"])
        if min(full) <= targ:  # already small: keep the original bytes
            with open(src, "rb") as f, atomic_write(dst, "wb") as out:
                shutil.copyfileobj(f, out)
            return
    else:
        scale = targ / min(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        if w < h:
            new = (targ, new[1])
        else:
            new = (new[0], targ)
        img = img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    fmt = _format_for(dst.name)
    kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "JPEG":
        kw["optimize"] = False
    with atomic_write(dst, "wb") as out:
        img.save(out, format=fmt, **kw)


def _load_manifest(path: Path, settings: dict) -> dict:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if m.get("version") != _MANIFEST_VERSION or m.get("settings") != settings:
        return {}
    files = m.get("files")
    return files if isinstance(files, dict) else {}


def resize_files(src_root, dst_root, fnames: Sequence[str], targ: int, *, max_workers: int | None = None,
                 quality: int = 92, max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool | None = None) -> dict:
    """Bring ``dst_root/<f>`` up to date for every ``f`` in ``fnames``; returns ``{"written", "reused"}`` counts."""
    from filelock import FileLock

    src_root, dst_root = Path(src_root), Path(dst_root)
    if dst_root.resolve() == src_root.resolve():
        raise ValueError("resize would overwrite the source images; choose another new_path")
    dst_root.mkdir(parents=True, exist_ok=True)
    settings = {"targ": int(targ), "quality": int(quality)}
    manifest_path = dst_root / MANIFEST_NAME
    with FileLock(str(dst_root / ".visiontune-resize.lock")):
        files = _load_manifest(manifest_path, settings)
        todo, stamps = [], {}
        for f in fnames:
            st = os.stat(src_root / f)
            stamp = [st.st_size, st.st_mtime_ns]
            stamps[f] = stamp
            if files.get(f) != stamp or not (dst_root / f).is_file():
                todo.append(f)
        if todo:
            workers = max_workers or default_io_workers()

            def work(f):
                resize_one(src_root / f, dst_root / f, targ, quality, max_pixels)
                return f

            show = progress if progress is not None else len(todo) >= 500
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
                it = pool.map(work, todo)
                if show:
                    from tqdm.auto import tqdm

                    it = tqdm(it, total=len(todo), desc=f"resize to {targ}px")
                try:
                    for f in it:
                        files[f] = stamps[f]
                finally:
                    atomic_write_json(manifest_path, {"version": _MANIFEST_VERSION, "settings": settings,
                                                      "files": files})
    return {"written": len(todo), "reused": len(fnames) - len(todo)}
