"""The warnings and errors building data gives, and how file names are shown in them.

Unreadable files are found when the data is built, not mid-epoch: by default they are skipped with one
:class:`SkippedFilesWarning` listing each file and reason (also kept in ``data.skipped``); ``strict=True``
raises :class:`UnreadableFilesError` naming them. A file that breaks *after* the data was built gives one
:class:`FileChangedWarning` (see :class:`~visiontune.data.datasets.FilesDataset`). Names are printed with
:func:`_shown`: undecodable bytes and control characters escaped.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..utils.text import printable

__all__ = [
    "ClassesWarning",
    "FileChangedWarning",
    "SizeTooLargeError",
    "SkippedFilesWarning",
    "UnicodeNamesWarning",
    "UnreadableFilesError",
]

_MAX_LISTED = 100  # files named one by one in the skip warning / error


class SkippedFilesWarning(UserWarning):
    """Some files could not be used as images and were left out of the data."""


class FileChangedWarning(UserWarning):
    """A file that decoded when the data was built failed to load mid-epoch; a blank image stood in for it."""


class UnreadableFilesError(ValueError):
    """Raised with ``strict=True`` when some files cannot be used; ``.skipped`` lists (relpath, reason)."""

    def __init__(self, skipped: Sequence[tuple[str, str]], root=None):
        self.skipped = list(skipped)
        where = f" under {root}" if root is not None else ""
        super().__init__(
            f"{len(self.skipped)} file(s){where} cannot be used as images (strict=True):\n"
            + _list_skipped(self.skipped)
            + "\nFix or delete them, or build the data without strict=True to skip them."
        )


def _shown(name) -> str:
    """A file name printable in any terminal: undecodable bytes (non-UTF-8 names) shown as ``\\xff``, control
    characters (ESC sequences, newlines) escaped by :func:`visiontune.utils.text.printable`."""
    return printable(str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def _list_skipped(skipped) -> str:
    lines = [f"  {_shown(f)}: {_shown(r)}" for f, r in skipped[:_MAX_LISTED]]
    if len(skipped) > _MAX_LISTED:
        lines.append(f"  ... and {len(skipped) - _MAX_LISTED} more (see data.skipped)")
    return "\n".join(lines)


class UnicodeNamesWarning(UserWarning):
    """Class folder names were not in Unicode NFC; the classes are named in NFC."""


class SizeTooLargeError(ValueError):
    """The image size and batch size need more memory than the machine has (checked before any image is read)."""


class ClassesWarning(UserWarning):
    """The training classes cannot all be learned: a class without usable images, or only one class."""


def _some(names: Sequence[str], limit: int = 10) -> str:
    """At most ``limit`` names, then how many more: a warning stays one short line for 10,000 classes."""
    shown = "[" + ", ".join(repr(n) for n in names[:limit]) + "]"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")

