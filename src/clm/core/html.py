"""Pieces of an offline HTML report: escaping, number formatting, embedded
PNGs, tables. The report (:mod:`clm.report.html`) and each domain's report
sections build on them."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from typing import Any

from clm.core.rundata import is_number

MAX_TABLE_ROWS = 200


def esc(value: Any) -> str:
    """HTML-escaped text of any value (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt_value(v: Any, kind: str = "number") -> str:
    """A value as short, readable text (not yet escaped)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if is_number(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if kind == "fraction" and 0.0 <= v <= 1.0:
            return f"{100.0 * v:.1f}%"
        if kind == "seconds":
            s = float(v)
            if s < 60:
                return f"{s:.1f} s"
            m, s = divmod(int(round(s)), 60)
            h, m = divmod(m, 60)
            return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"
        if isinstance(v, int) or (kind == "count" and float(v).is_integer()):
            return f"{int(v):,}"
        a = abs(v)
        if a != 0 and (a >= 1e5 or a < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str, css_class: str = "plot") -> str:
    return f'<img class="{css_class}" alt="{esc(alt)}" src="{data_uri(png)}">'


def missing(text: str) -> str:
    return f'<p class="missing">{esc(text)}</p>'


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]], kinds: Sequence[str] | None = None) -> str:
    """An HTML table; numbers right-aligned, every cell escaped."""
    kinds = list(kinds) if kinds is not None else ["number"] * len(columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for v, kind in zip(row, kinds):
            css = ' class="num"' if is_number(v) else ""
            cells.append(f"<td{css}>{esc(fmt_value(v, kind))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def records_table(records: Sequence[dict[str, Any]], index_column: str | None = None,
                  max_rows: int = MAX_TABLE_ROWS) -> str:
    """A table of JSON objects: columns are the union of their keys, in order
    of first appearance; a record without a key gets an empty cell."""
    columns: list[str] = []
    for r in records:
        for k in r:
            if k not in columns:
                columns.append(k)
    shown = records[:max_rows]
    rows = [[r.get(c, "") for c in columns] for r in shown]
    if index_column is not None:
        columns = [index_column] + columns
        rows = [[i] + row for i, row in enumerate(rows)]
    out = table_html(columns, rows)
    if len(records) > max_rows:
        out += f'<p class="note">showing the first {max_rows} of {len(records)} rows</p>'
    return out


def note_list(notes: Sequence[str | None]) -> str:
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes if n)
