"""Edit episodes of a levels run (issue 25): what the ``edit_search`` coupling
did to some levels, kept for the report's before/after pictures.

:class:`EditEpisodes` keeps the ``keep`` (12) best edits the run judged,
each with the level before, the level after, the edits made (kind, row,
column, 0-based) and the judge's verdict on the edited level (playable,
creative, D's realism, novelty), with the optimal pushes before (the parent's,
judged when it was made: a playable G sample or an archived level) and after.
"Best": creative first, then playable, then the most pushes gained, then the
latest round; one per edited layout. It also counts every edit judged, the
playable and the creative ones, so the report can say what share of the edits
the shown ones are (they are the best, not a sample).

The record is plain JSON (:data:`FILE` in the run's ``levels/`` folder,
written atomically at the end of the run) and part of the checkpoint's state,
so a resumed run continues it. :func:`parse_edit_episodes` checks everything
read back (the file or a checkpoint): the format and version, the counts, each
level (valid Boxoban text of one size), each edit (a known kind at a cell of
the level), and that the verdict agrees with itself; anything else is a
``UserError`` naming the field, never a crash later.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from clm.core.errors import UserError
from clm.core.rundata import NOT_RECORDED, Loaded, read_json_object
from clm.core.rundir import atomic_write_text
from clm.domains.levels import Level
from clm.domains.levels.edit_env import EDIT_KINDS

FORMAT = "clm-edit-episodes"
VERSION = 1
KEEP = 12
FILE = "edit_episodes.json"  #: in the run's levels/ folder
SOURCES = ("generator", "archive")  #: where an edited level came from
EPISODE_KEYS = ("round", "source", "before", "after", "edits", "pushes_before", "pushes_after", "playable",
                "creative", "realism", "novelty")
MAX_KEEP = 1000


def _rank(ep: dict) -> tuple:
    return (ep["creative"], ep["playable"], ep["pushes_after"] - ep["pushes_before"], ep["round"])


class EditEpisodes:
    """The best ``keep`` edit episodes of a run, and counts of every edit judged."""

    def __init__(self, keep: int = KEEP):
        if not 1 <= keep <= MAX_KEEP:
            raise UserError(f"edit episodes to keep must be in 1..{MAX_KEEP}, got {keep}")
        self.keep = keep
        self.episodes: list[dict] = []
        self.judged = self.playable = self.creative = 0

    def offer(self, rnd: int, before: list[Level], pushes_before: list[int], sources: list[str],
              after: list[Level], edits: list[list[tuple]], j) -> None:
        """One round's edited levels: parents ``before`` (their optimal pushes and
        where they came from), the edited levels ``after``, the edits made on each
        (``random_edits``' log) and ``j``, the judge's :class:`Judgement` of ``after``."""
        n = len(after)
        if not (len(before) == len(pushes_before) == len(sources) == len(edits) == len(j.playable) == n):
            raise ValueError("offer needs one parent, push count, source, edit list and verdict per edited level")
        self.judged += n
        self.playable += int(sum(bool(v) for v in j.playable))
        self.creative += int(sum(bool(v) for v in j.creative))
        fresh = []
        for i in range(n):
            if not edits[i]:  # every drawn edit was refused: nothing to show
                continue
            fresh.append({"round": int(rnd), "source": sources[i], "before": before[i].to_text().split("\n"),
                          "after": after[i].to_text().split("\n"),
                          "edits": [{"kind": k, "row": int(r), "col": int(c)} for k, r, c in edits[i]],
                          "pushes_before": int(pushes_before[i]), "pushes_after": int(j.pushes[i]),
                          "playable": bool(j.playable[i]), "creative": bool(j.creative[i]),
                          "realism": round(float(j.realism[i]), 4), "novelty": float(j.novelty[i])})
        kept, seen = [], set()
        for ep in sorted(self.episodes + fresh, key=_rank, reverse=True):
            layout = "\n".join(ep["after"])
            if layout not in seen:
                seen.add(layout)
                kept.append(ep)
        self.episodes = kept[: self.keep]

    def state(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "keep": self.keep, "judged": self.judged,
                "playable": self.playable, "creative": self.creative, "episodes": [dict(e) for e in self.episodes]}

    def load_state(self, obj: Any, where: str) -> None:
        got = parse_edit_episodes(obj, where)
        self.keep, self.episodes = got.keep, got.episodes
        self.judged, self.playable, self.creative = got.judged, got.playable, got.creative

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.state(), indent=1) + "\n")

    def levels(self, i: int) -> tuple[Level, Level]:
        """Episode ``i``'s levels, before and after."""
        ep = self.episodes[i]
        return Level.from_text("\n".join(ep["before"])), Level.from_text("\n".join(ep["after"]))


def _int(v: Any, lo: int, hi: int | None, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise UserError(f"{where}: expected an integer in {lo}..{'' if hi is None else hi}, got {v!r}", exit_code=2)
    return v


def _level(rows: Any, where: str) -> Level:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows):
        raise UserError(f"{where}: expected a level as a list of Boxoban rows (strings)", exit_code=2)
    return Level.from_text("\n".join(rows), source=where)


def _episode(ep: Any, where: str) -> dict:
    if not isinstance(ep, dict) or set(ep) != set(EPISODE_KEYS):
        raise UserError(f"{where}: expected an object with exactly the keys {', '.join(EPISODE_KEYS)}", exit_code=2)
    _int(ep["round"], 0, None, f"{where}.round")
    if ep["source"] not in SOURCES:
        raise UserError(f"{where}.source: expected one of {', '.join(SOURCES)}, got {ep['source']!r}", exit_code=2)
    before, after = _level(ep["before"], f"{where}.before"), _level(ep["after"], f"{where}.after")
    if before.shape != after.shape:
        raise UserError(f"{where}: the level before is {before.shape}, after {after.shape}; an edit keeps the size",
                        exit_code=2)
    h, w = after.shape
    if not isinstance(ep["edits"], list) or not ep["edits"]:
        raise UserError(f"{where}.edits: expected a non-empty list of edits", exit_code=2)
    for k, e in enumerate(ep["edits"]):
        at = f"{where}.edits[{k}]"
        if not isinstance(e, dict) or set(e) != {"kind", "row", "col"} or e["kind"] not in EDIT_KINDS:
            raise UserError(f"{at}: expected {{kind, row, col}} with kind one of {', '.join(EDIT_KINDS)}", exit_code=2)
        _int(e["row"], 0, h - 1, f"{at}.row")
        _int(e["col"], 0, w - 1, f"{at}.col")
    _int(ep["pushes_before"], -1, None, f"{where}.pushes_before")
    pushes = _int(ep["pushes_after"], -1, None, f"{where}.pushes_after")
    for flag in ("playable", "creative"):
        if not isinstance(ep[flag], bool):
            raise UserError(f"{where}.{flag}: expected true or false, got {ep[flag]!r}", exit_code=2)
    if ep["playable"] != (pushes > 0) or (ep["creative"] and not ep["playable"]):
        raise UserError(f"{where}: the verdict disagrees with itself (playable {ep['playable']}, creative "
                        f"{ep['creative']}, optimal pushes after {pushes})", exit_code=2)
    for name, hi in (("realism", 1.0), ("novelty", float(h * w))):
        v = ep[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= hi:
            raise UserError(f"{where}.{name}: expected a number in 0..{hi:g}, got {v!r}", exit_code=2)
    return ep


def parse_edit_episodes(obj: Any, where: str) -> EditEpisodes:
    """An :class:`EditEpisodes` from its :meth:`~EditEpisodes.state`, every field checked
    (a ``UserError`` with exit code 2 naming ``where`` and the field)."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object", exit_code=2)
    if obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise UserError(f"{where}: not a version-{VERSION} {FORMAT} record (format {obj.get('format')!r}, version "
                        f"{obj.get('version')!r})", exit_code=2)
    extra = set(obj) - {"format", "version", "keep", "judged", "playable", "creative", "episodes"}
    if extra:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(extra))}", exit_code=2)
    out = EditEpisodes(_int(obj.get("keep"), 1, MAX_KEEP, f"{where}.keep"))
    out.judged = _int(obj.get("judged"), 0, None, f"{where}.judged")
    out.playable = _int(obj.get("playable"), 0, out.judged, f"{where}.playable")
    out.creative = _int(obj.get("creative"), 0, out.playable, f"{where}.creative")
    eps = obj.get("episodes")
    if not isinstance(eps, list) or len(eps) > min(out.keep, out.judged):
        raise UserError(f"{where}.episodes: expected a list of at most {min(out.keep, out.judged)} episodes "
                        f"(keep, and no more than were judged)", exit_code=2)
    out.episodes = [_episode(ep, f"{where}.episodes[{i}]") for i, ep in enumerate(eps)]
    return out


def read_edit_episodes(path: Path) -> Loaded:
    """The run's edit episodes (``Loaded.value`` an :class:`EditEpisodes`), or None and why."""
    got = read_json_object(path)
    if got.value is None:
        return Loaded(None, got.note or f"{path.name}: {NOT_RECORDED}")
    try:
        return Loaded(parse_edit_episodes(got.value, f"levels/{path.name}"))
    except UserError as e:
        return Loaded(None, f"refused: {e}")
