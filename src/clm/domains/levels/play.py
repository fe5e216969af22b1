"""Play Sokoban levels in the browser: the report's "Play the levels"
section (clm.levels_clm.report) and ``clm serve``'s page share this player.

Everything is inline (:data:`PLAYER_CSS`, :data:`PLAYER_JS`): no file or
network request, so the report stays one file that opens offline. Levels
travel as JSON (:func:`level_payload`): their Boxoban rows, and the
solver's solution when it found one within the report's time budget. The
player's rules are the simulator's (``clm.domains.levels.sim``): a move
into a box pushes it when the cell behind is free; keys: arrows move, ``u``
or Backspace undo, ``r`` restarts; "Replay solution" steps through the
solver's moves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from clm.core.templating import json_for_script, render
from clm.domains.levels.solver import solve_level

_PACKAGE = "clm.domains.levels"
__all__ = ["json_for_script", "level_payload", "play_html", "solve_for_play"]

#: Seconds the report may spend solving its shown levels in all, and per level.
SOLVE_BUDGET_S = 30.0
SOLVE_LIMIT_PER_LEVEL_S = 2.0


def solve_for_play(levels: Sequence, budget_s: float = SOLVE_BUDGET_S,
                   per_level_s: float = SOLVE_LIMIT_PER_LEVEL_S) -> list[dict[str, Any]]:
    """One record per level: ``solution`` (LURD moves, or None), ``pushes``,
    ``status`` (solved / unsolvable / limit / not tried: the budget was spent)."""
    out = []
    deadline = time.monotonic() + budget_s
    for lv in levels:
        left = deadline - time.monotonic()
        if left <= 0.05:
            out.append({"solution": None, "pushes": None, "status": "not tried"})
            continue
        r = solve_level(lv, time_limit=min(per_level_s, left))
        out.append({"solution": r.moves if r.solved else None, "pushes": r.pushes if r.solved else None,
                    "status": r.status})
    return out


def level_payload(levels: Sequence, solves: Sequence[dict[str, Any]] | None = None,
                  labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The player's JSON for ``levels``: name, label, rows, and the solve record's fields."""
    out = []
    for i, lv in enumerate(levels):
        item = {"name": lv.name or str(i), "label": labels[i] if labels else str(i), "rows": lv.to_text().split("\n")}
        item.update(solves[i] if solves else {"solution": None, "pushes": None, "status": "not tried"})
        out.append(item)
    return out


def play_html(groups: Sequence[tuple[str, str, list[dict[str, Any]]]]) -> str:
    """The play section's body: a row of level buttons per group (id, title,
    payload), one board, and the player's data and code (all inline)."""
    return render(_PACKAGE, "play_section.html.j2", groups=[{"id": g, "title": t, "payload": p} for g, t, p in groups],
                  levels={g: p for g, _, p in groups})
