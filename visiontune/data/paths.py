"""Which files under a data folder are read: image files and class folders listed, and the file ids of a
labels CSV taken as paths that must stay inside their image folder (no absolute paths, no ``..``, no
symbolic link leading out).

>>> _safe_relative("a/b.jpg"), _safe_relative("../etc/passwd"), _safe_relative("/etc/passwd")
(True, False, False)
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..imaging.limits import IMAGE_EXTENSIONS
from ..utils.text import nfc
from .errors import UnicodeNamesWarning, _shown

__all__ = ["id_key"]


def _list_images(folder: Path) -> list[str]:
    """Names of image files directly in ``folder`` (hidden files and other suffixes ignored), sorted."""
    names = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if Path(e.name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                if e.is_dir():
                    continue
            except OSError:
                pass  # a broken link or loop: keep it so the probe reports why
            names.append(e.name)
    return sorted(names)


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _class_folders(folder: Path) -> dict[str, str]:
    """``{class name: folder name}`` for the class folders in ``folder``, class names in Unicode NFC.

    ``é`` typed as one code point or as ``e`` + a combining accent look the same: they are one class (named
    in NFC, with one warning). Two folders whose names differ only that way are refused, naming both.
    """
    out: dict[str, str] = {}
    renamed = []
    for name in _subdirs(folder):
        key = nfc(name)
        if key in out:
            raise ValueError(f"{_shown(folder)} holds two class folders whose names look identical: "
                             f"{out[key]!a} and {name!a} (the same letters, composed and decomposed Unicode); "
                             "merge them into one folder")
        out[key] = name
        if key != name:
            renamed.append((name, key))
    if renamed:
        warnings.warn(f"visiontune: class folder name(s) in {_shown(folder)} are not in Unicode NFC: "
                      + ", ".join(f"{a!a} is named {b!a}" for a, b in renamed[:10])
                      + (f" and {len(renamed) - 10} more" if len(renamed) > 10 else "")
                      + " (NFC, so the same name typed either way is one class)", UnicodeNamesWarning, stacklevel=4)
    return out


def _resolve_val_name(root: Path, val_name: str) -> str:
    if (root / val_name).is_dir():
        return val_name
    if val_name == "valid" and (root / "val").is_dir():
        return "val"
    raise FileNotFoundError(
        f"no validation folder {root / val_name}; folders in {root}: {_subdirs(root) if root.is_dir() else []}. "
        f"Pass val_name= (--val-name) the folder holding the validation images (e.g. val_name='val')."
    )


def _check_root(path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    return root


def _rel(*parts: str) -> str:
    return PurePosixPath(*parts).as_posix()


def id_key(name: str) -> str:
    """The file a CSV id names, as one spelling: ``im0``, ``./im0``, ``.//im0`` and ``a\\im0`` vs ``a/im0``
    are the same file, so the duplicate check compares these keys (a file listed twice would
    otherwise sit in both the training and the validation rows).

    >>> [id_key(s) for s in ("im0", "./im0", ".//im0", "a/./b", "a" + chr(92) + "b")]
    ['im0', 'im0', 'im0', 'a/b', 'a/b']
    """
    return PurePosixPath(name.replace("\\", "/")).as_posix()


def _safe_relative(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return False
    first = p.parts[0]
    return not (len(first) >= 2 and first[1] == ":")  # a Windows drive (C:)


def _leaving_folder(root: Path, folder: str, fnames: Sequence[str]) -> list[int]:
    """Indexes of ``fnames`` (relative to ``root``, under ``folder``) whose real path (symbolic links
    followed, as ``os.path.realpath`` / ``Path.resolve()`` does) is not inside the real ``root / folder``.

    Each directory is resolved once; a file is resolved again only if it is itself a link, so a big
    CSV costs about one ``lstat`` a row. Missing files resolve to where they would be (they are
    reported as missing later); a dangling link that points outside counts as leaving.
    """
    base = os.path.realpath(root / folder)
    inside = base.rstrip(os.sep) + os.sep
    dirs: dict[str, str] = {}
    out = []
    for i, f in enumerate(fnames):
        full = os.path.join(root, *PurePosixPath(f).parts)
        parent, name = os.path.split(full)
        real_parent = dirs.get(parent)
        if real_parent is None:
            real_parent = dirs[parent] = os.path.realpath(parent)
        real = os.path.join(real_parent, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if real != base and not real.startswith(inside):
            out.append(i)
    return out


def _suffix_hint(images: Path, ids: Sequence[str], suffix: str, rows: int = 20) -> str | None:
    """When none of the first ``rows`` ids has a file but a changed ``suffix`` would find them: what to pass."""
    head = [s for s in ids[:rows] if s]
    if not head or any((images / (s + suffix)).exists() for s in head):
        return None
    if suffix and all(s.endswith(suffix) for s in head) and any((images / s).exists() for s in head):
        return f"the ids already end in {suffix!r}: drop the suffix (suffix='', or no --suffix)"
    for ext in sorted(IMAGE_EXTENSIONS):
        if any((images / (s + ext)).exists() for s in head):
            return f"the files are named <id>{ext}: pass suffix={ext!r} (--suffix {ext})"
    return None

