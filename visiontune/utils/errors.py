"""Error text for one-line messages.

>>> first_line(ValueError("bad value\\n  at line 2")), first_line(KeyError())
('bad value', '')
"""
from __future__ import annotations


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of ``str(e)``, at most ``limit`` characters ('' when the error has no text)."""
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else ""
