"""Control characters escaped for the terminal, formula cells neutralised for spreadsheets, NFC names."""
import pytest

from visiontune.utils.text import nfc, printable, spreadsheet_safe


@pytest.mark.parametrize("raw, shown", [
    ("x\x1b[2J.jpg", "x\\x1b[2J.jpg"),
    ("a\nvisiontune: done", "a\\nvisiontune: done"),
    ("cr\rover", "cr\\rover"),
    ("bell\x07", "bell\\x07"),
    ("caf\udce9.jpg", "caf\\udce9.jpg"),        # a non-UTF-8 byte kept by surrogateescape
    ("zero\u200bwidth", "zero\\u200bwidth"),    # format characters too
    ("ünïcödé 狗 .jpg", "ünïcödé 狗 .jpg"),
])
def test_printable(raw, shown):
    assert printable(raw) == shown
    assert printable(raw).isprintable()


@pytest.mark.parametrize("cell, written", [
    ("=1+2", "'=1+2"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("-0.25", "-0.25"), ("+3", "+3"), ("1e-5", "1e-5"), ("-1.5E+3", "-1.5E+3"),
    ("ants", "ants"), ("a=b", "a=b"), ("", ""),
])
def test_spreadsheet_safe(cell, written):
    assert spreadsheet_safe(cell) == written


def test_nfc_joins_composed_and_decomposed():
    assert nfc("Cafe\u0301") == nfc("Caf\u00e9") == "Caf\u00e9"


@pytest.mark.parametrize("text", ["=1+2", "'=1+2", "''=x", "'plain", "-0.25", "'-0.25", "-inf", "ants", "", "@a"])
def test_spreadsheet_safe_round_trips(text):
    from visiontune.utils.text import from_spreadsheet_safe

    assert from_spreadsheet_safe(spreadsheet_safe(text)) == text
    assert not spreadsheet_safe(text).lstrip("'").startswith(("=", "+", "@")) or spreadsheet_safe(text).startswith("'")
