"""Reading a run directory for a report, tolerantly.

Every reader returns what it found plus a note: a missing file gives
``None`` and "not recorded"; an unreadable one gives ``None`` and says why.
Nothing here raises for a damaged or half-written run directory, so that the
report of a run that stopped early still opens.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


NOT_RECORDED = "not recorded"


@dataclass
class Loaded:
    """What one reader found: ``value`` (None when absent or unreadable) and
    ``note``, a short sentence for the report when something is off."""

    value: Any = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_number(v: Any) -> bool:
    """A real number for plotting or formatting (bools are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_text(path: Path) -> Loaded:
    """The file's text, or a note saying it is missing or unreadable."""
    if not path.is_file():
        return Loaded(None, f"{path.name}: {NOT_RECORDED}")
    try:
        return Loaded(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        return Loaded(None, f"{path.name}: cannot read ({e.strerror})")


def read_json_object(path: Path) -> Loaded:
    """A JSON object (dict) from ``path``; anything else gives a note."""
    got = read_text(path)
    if got.value is None:
        return got
    try:
        obj = json.loads(got.value)
    except json.JSONDecodeError as e:
        return Loaded(None, f"{path.name}: not valid JSON ({e.msg} at line {e.lineno})")
    if not isinstance(obj, dict):
        return Loaded(None, f"{path.name}: expected a JSON object, found {type(obj).__name__}")
    return Loaded(obj)


def read_jsonl(path: Path) -> Loaded:
    """The JSON objects of a JSON-lines file, one per line. Lines that do not
    parse (a half-written last line of a running job) are skipped and counted
    in the note; ``extra["skipped"]`` holds their number."""
    got = read_text(path)
    if got.value is None:
        return got
    rows: list[dict[str, Any]] = []
    skipped = 0
    for line in got.value.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            skipped += 1
    note = f"{path.name}: {skipped} line(s) that are not JSON objects were skipped" if skipped else None
    return Loaded(rows, note, {"skipped": skipped})


def row_step(row: dict[str, Any], index: int) -> float:
    """The x value of a metrics row: its ``"step"`` when that is a number,
    else its position in the file."""
    return float(row["step"]) if is_number(row.get("step")) else float(index)


def metric_series(rows: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """One ``(steps, values)`` series per numeric key of the metrics rows.

    A key gets a series when at least one row holds a number for it. Rows
    that do not hold the key are left out of its series (keys logged every
    few rounds plot as joined lines); rows where it is null (how the run
    directory writes NaN and infinity) hold NaN, which plots as a gap.
    Keys keep the order of first appearance.
    """
    keys: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for k, v in row.items():
            if k != "step" and k not in seen and is_number(v):
                seen.add(k)
                keys.append(k)
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in keys}
    for i, row in enumerate(rows):
        x = row_step(row, i)
        for k, v in row.items():
            if k in out:
                out[k][0].append(x)
                out[k][1].append(float(v) if is_number(v) else math.nan)
    return out


def null_steps(rows: list[dict[str, Any]], key: str) -> list[float]:
    """Steps at which ``key`` was written as null or a non-finite number
    (the run directory writes NaN and infinity as null)."""
    out = []
    for i, r in enumerate(rows):
        if key in r:
            v = r[key]
            if v is None or (is_number(v) and not math.isfinite(v)):
                out.append(row_step(r, i))
    return out
