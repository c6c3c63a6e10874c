"""The report's small HTML pieces: escaping, "not available" notes, tables, numbers and settings in words."""
from __future__ import annotations

import html
import json
import math


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _na(what: str) -> str:
    return f'<p class="na">Not available: {_esc(what)}.</p>'


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _table(header: list[str], rows: list[list], num_cols: set[int] = frozenset()) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, v in enumerate(row):
            cls = ' class="num"' if i in num_cols else ""
            out.append(f"<td{cls}>{_esc(_fmt(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _readable(v) -> str:
    """A configuration value in words: ``yes`` / ``no`` / ``not set``, lists joined, numbers short."""
    if v is None or v == "":
        return "not set"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_readable(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_readable(x)}" for k, x in v.items()) if v else "none"
    return str(v)


def _seconds_text(sec: float) -> str:
    """``75.3`` -> ``1 min 15 s``; under a minute one decimal."""
    if not math.isfinite(sec):
        return "not recorded"
    if sec < 60:
        return f"{sec:.1f} s"
    m, s_ = divmod(int(round(sec)), 60)
    if m < 60:
        return f"{m} min {s_} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"
