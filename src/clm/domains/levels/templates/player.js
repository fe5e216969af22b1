{#- The player. Rules as clm.domains.levels.sim: the move into a box pushes it when the cell behind is neither
    wall nor box; the level is solved when every box stands on a goal. -#}
{% raw %}
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
{% endraw %}
