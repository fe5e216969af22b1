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

import html
import json
import time
from collections.abc import Sequence
from typing import Any

from clm.domains.levels.solver import solve_level

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


def json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and
    ``&`` escaped, so no level name can close the script element."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def play_html(groups: Sequence[tuple[str, str, list[dict[str, Any]]]]) -> str:
    """The play section's body: a row of level buttons per group (id, title,
    payload), one board, and the player's data and code (all inline)."""
    parts = ['<p class="note">Open a level, then play it with the arrow keys; <kbd>u</kbd> or <kbd>Backspace</kbd> '
             'undoes a move, <kbd>r</kbd> restarts. "Replay solution" steps through the solver\'s push-optimal '
             "solution (lowercase moves walk, uppercase ones push).</p>"]
    data = {}
    for gid, title, payload in groups:
        data[gid] = payload
        buttons = "".join(f'<button type="button" class="pick" data-group="{html.escape(gid)}" data-index="{i}" '
                          f'title="{html.escape(p["name"])}">{html.escape(p["label"])}</button>'
                          for i, p in enumerate(payload))
        parts.append(f'<div class="picks"><span class="pick-title">{html.escape(title)}</span> '
                     f'{buttons or "<span class=missing>no levels</span>"}</div>')
    parts.append(f"<style>{PLAYER_CSS}</style>{PLAYER_HTML}")
    parts.append(f'<script type="application/json" id="clm-levels">{json_for_script(data)}</script>')
    parts.append(f"<script>{PLAYER_JS}</script>")
    return "".join(parts)


PLAYER_HTML = """<div id="clm-player" class="player" hidden>
<div class="player-head"><strong id="clm-play-title"></strong> <span id="clm-play-status" class="play-status"></span></div>
<div id="clm-board" class="board" tabindex="0" aria-label="Sokoban board"></div>
<div class="player-controls">
<button type="button" id="clm-undo">Undo (u)</button> <button type="button" id="clm-restart">Restart (r)</button>
<button type="button" id="clm-replay">Replay solution</button> <button type="button" id="clm-step">Next step</button>
<span id="clm-solution" class="note"></span></div></div>"""

PLAYER_CSS = """
.picks { margin:6px 0; line-height:2.1; }
.pick-title { font-weight:600; margin-right:6px; }
button.pick { font:12px system-ui,sans-serif; min-width:34px; margin:0 2px; padding:2px 6px; border:1px solid #c8cfda;
              border-radius:4px; background:#f7f9fc; cursor:pointer; }
button.pick.open { background:#2457a6; color:#fff; border-color:#2457a6; }
.player { margin-top:12px; border-top:1px solid var(--line); padding-top:10px; }
.player-head { margin-bottom:6px; }
.play-status { margin-left:10px; color:var(--muted); }
.play-status.solved { color:var(--ok); font-weight:600; }
.board { display:inline-grid; gap:0; outline:none; border:2px solid transparent; border-radius:4px; }
.board:focus { border-color:#2457a6; }
.board .c { width:34px; height:34px; position:relative; background:#e8e2d0; }
.board .c.w { background:#5a4e44; }
.board .c.g::after { content:""; position:absolute; left:12px; top:12px; width:10px; height:10px; border-radius:50%;
                     background:#d33; }
.board .c.b::before { content:""; position:absolute; inset:4px; background:#c98b2b; border:2px solid #8a5a12;
                      border-radius:3px; z-index:1; }
.board .c.b.g::before { background:#3c9a3c; border-color:#1f6b1f; }
.board .c.p::before { content:""; position:absolute; inset:6px; background:#2457a6; border-radius:50%; z-index:1; }
.player-controls { margin-top:8px; }
.player-controls button { font:13px system-ui,sans-serif; padding:3px 10px; margin-right:4px; }
kbd { border:1px solid #c8cfda; border-radius:3px; padding:0 4px; font-size:12px; background:#f7f9fc; }
"""

# The player. Rules as clm.domains.levels.sim: the move into a box pushes it when the cell
# behind is neither wall nor box; the level is solved when every box stands on a goal.
PLAYER_JS = r"""
(function () {
  "use strict";
  var DIRS = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
  var LURD = {u: "ArrowUp", d: "ArrowDown", l: "ArrowLeft", r: "ArrowRight"};
  var $ = function (id) { return document.getElementById(id); };
  var data = JSON.parse($("clm-levels").textContent);
  var S = null, level = null, replayAt = 0;

  function parse(rows) {
    var h = rows.length, w = 0, s = {h: h, walls: {}, goals: {}, boxes: {}, player: null, moves: [], pushes: 0};
    rows.forEach(function (row) { w = Math.max(w, row.length); });
    s.w = w;
    rows.forEach(function (row, r) {
      for (var c = 0; c < w; c++) {
        var ch = row.charAt(c) || " ", k = r * w + c;
        if (ch === "#") s.walls[k] = true;
        if (ch === "." || ch === "*" || ch === "+") s.goals[k] = true;
        if (ch === "$" || ch === "*") s.boxes[k] = true;
        if (ch === "@" || ch === "+") s.player = k;
      }
    });
    return s;
  }
  function solved(s) {
    for (var k in s.boxes) if (!s.goals[k]) return false;
    return true;
  }
  function move(s, key) {
    var d = DIRS[key]; if (!d || solved(s)) return false;
    var r = Math.floor(s.player / s.w), c = s.player % s.w, r1 = r + d[0], c1 = c + d[1];
    if (r1 < 0 || r1 >= s.h || c1 < 0 || c1 >= s.w) return false;
    var a = r1 * s.w + c1;
    if (s.walls[a]) return false;
    var pushed = null;
    if (s.boxes[a]) {
      var r2 = r1 + d[0], c2 = c1 + d[1];
      if (r2 < 0 || r2 >= s.h || c2 < 0 || c2 >= s.w) return false;
      var b = r2 * s.w + c2;
      if (s.walls[b] || s.boxes[b]) return false;
      delete s.boxes[a]; s.boxes[b] = true; pushed = [a, b]; s.pushes++;
    }
    s.moves.push({from: s.player, pushed: pushed, key: key});
    s.player = a;
    return true;
  }
  function undo(s) {
    var m = s.moves.pop(); if (!m) return false;
    if (m.pushed) { delete s.boxes[m.pushed[1]]; s.boxes[m.pushed[0]] = true; s.pushes--; }
    s.player = m.from;
    return true;
  }
  function draw() {
    var board = $("clm-board"), cells = [];
    board.style.gridTemplateColumns = "repeat(" + S.w + ", 34px)";
    for (var k = 0; k < S.h * S.w; k++) {
      var cls = "c" + (S.walls[k] ? " w" : "") + (S.goals[k] ? " g" : "") + (S.boxes[k] ? " b" : "") +
                (S.player === k ? " p" : "");
      cells.push('<div class="' + cls + '"></div>');
    }
    board.innerHTML = cells.join("");
    var st = $("clm-play-status");
    if (solved(S)) { st.textContent = "Solved in " + S.moves.length + " moves (" + S.pushes + (S.pushes === 1 ? " push)!" : " pushes)!"); st.className = "play-status solved"; }
    else { st.textContent = S.moves.length + " moves, " + S.pushes + " pushes"; st.className = "play-status"; }
    board.setAttribute("data-solved", solved(S) ? "yes" : "no");
    board.setAttribute("data-moves", String(S.moves.length));
  }
  function open(group, index) {
    level = data[group][index];
    S = parse(level.rows); replayAt = 0;
    $("clm-player").hidden = false;
    $("clm-play-title").textContent = level.label + ": " + level.name;
    var sol = $("clm-solution");
    if (level.solution) sol.textContent = "Solver: " + level.solution.length + " moves, " + level.pushes + " pushes (" + level.solution + ")";
    else sol.textContent = "Solver: no solution to show (" + level.status + ")";
    $("clm-replay").disabled = $("clm-step").disabled = !level.solution;
    document.querySelectorAll("button.pick").forEach(function (b) {
      b.classList.toggle("open", b.getAttribute("data-group") === group && b.getAttribute("data-index") === String(index));
    });
    draw();
    $("clm-board").focus();
  }
  function restart() { if (level) { S = parse(level.rows); replayAt = 0; draw(); } }
  function step() {
    if (!level || !level.solution) return;
    if (replayAt === 0 || replayAt > level.solution.length) { S = parse(level.rows); replayAt = 0; }
    if (replayAt < level.solution.length) { move(S, LURD[level.solution.charAt(replayAt).toLowerCase()]); replayAt++; }
    draw();
  }
  var timer = null;
  function replay() {
    if (!level || !level.solution) return;
    if (timer) clearInterval(timer);
    S = parse(level.rows); replayAt = 0; draw();
    timer = setInterval(function () {
      if (replayAt >= level.solution.length) { clearInterval(timer); timer = null; return; }
      step();
    }, 180);
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.classList && t.classList.contains("pick")) open(t.getAttribute("data-group"), Number(t.getAttribute("data-index")));
  });
  $("clm-undo").addEventListener("click", function () { if (S && undo(S)) draw(); });
  $("clm-restart").addEventListener("click", restart);
  $("clm-replay").addEventListener("click", replay);
  $("clm-step").addEventListener("click", step);
  document.addEventListener("keydown", function (e) {
    if (!S || e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (DIRS[e.key]) { e.preventDefault(); if (timer) { clearInterval(timer); timer = null; } replayAt = 0; if (move(S, e.key)) draw(); }
    else if (e.key === "u" || e.key === "Backspace") { e.preventDefault(); if (undo(S)) draw(); }
    else if (e.key === "r") { e.preventDefault(); restart(); }
  });
  // for pages that load levels later (clm serve): replace the data, ask which level is open
  window.clmPlayer = {open: open, reload: function (d) { data = d; },
                      current: function () { return level; }, levels: function () { return data; }};
})();
"""
