"""Text that crosses a trust boundary: file names and labels printed to a terminal or written to a CSV.

- :func:`printable`: control characters (ESC sequences, newlines, carriage returns, ...) escaped, so a
  file named ``"x\\x1b[2J.jpg"`` cannot clear the terminal and ``"a\\nvisiontune: done"`` cannot forge
  a line. Printable Unicode is kept as it is.
- :func:`spreadsheet_safe`: a cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
  or a tab / carriage return first) gets a leading ``'``, as OWASP's CSV-injection advice and
  spreadsheet-safe writers do. Plain numbers (``-0.5``, ``+3``) are left alone. A cell that already
  starts with ``'`` before such a character gets one more, so :func:`from_spreadsheet_safe` (used by the
  readers of our own CSVs) gives back exactly the text that was written.
- :func:`nfc`: Unicode NFC, so ``"é"`` typed as one code point or as ``e`` + a combining accent is one
  class name, not two that look identical.

>>> printable("ant\\x1b[31m.jpg")
'ant\\\\x1b[31m.jpg'
>>> printable("two\\nlines")
'two\\\\nlines'
>>> spreadsheet_safe("=HYPERLINK(1)"), spreadsheet_safe("-0.25"), spreadsheet_safe("ants")
("'=HYPERLINK(1)", '-0.25', 'ants')
>>> nfc("e\\u0301") == "\\u00e9"
True
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["FORMULA_PREFIXES", "from_spreadsheet_safe", "nfc", "printable", "spreadsheet_safe"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text) -> str:
    """``text`` with every control character (Unicode category C*, except none) written as an escape."""
    out = []
    for ch in str(text):
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch)[0] == "C" and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _formula_like(text: str) -> bool:
    bare = text.lstrip("'")
    return bare.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(bare)


def spreadsheet_safe(cell) -> str:
    """``cell`` as text that a spreadsheet shows rather than evaluates (a leading ``'`` where needed)."""
    text = str(cell)
    return "'" + text if _formula_like(text) else text


def from_spreadsheet_safe(cell: str) -> str:
    """The text :func:`spreadsheet_safe` was given: ``from_spreadsheet_safe(spreadsheet_safe(t)) == t``."""
    return cell[1:] if cell.startswith("'") and _formula_like(cell) else cell


def nfc(text: str) -> str:
    """Unicode normal form C of ``text``."""
    return unicodedata.normalize("NFC", text)
