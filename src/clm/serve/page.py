"""``clm serve``'s page: the form that asks for levels, the level buttons,
the report's player (clm.domains.levels.play) and the favourites. All
inline, like the report: the page loads nothing from elsewhere."""

from __future__ import annotations

import html

from clm.domains.levels.play import PLAYER_CSS, PLAYER_HTML, PLAYER_JS, json_for_script

PAGE_CSS = """
:root { --ok:#1b7f3b; --bad:#b00020; --ink:#1d2330; --muted:#5b6475; --line:#dde2ea; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; color:var(--ink);
       background:#f4f6f9; }
main { max-width:1100px; margin:0 auto; padding:20px 24px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
h1 { font-size:24px; margin:0 0 4px; } h2 { font-size:18px; margin:0 0 10px; }
label { margin-right:14px; font-size:14px; }
input, select { font:14px system-ui,sans-serif; padding:2px 4px; }
input[type=number] { width:70px; } input.wide { width:90px; }
.note { color:var(--muted); font-size:13px; margin:4px 0; }
#clm-message { min-height:1.4em; } #clm-message.error { color:var(--bad); }
#clm-fav-status { margin-left:8px; color:var(--ok); }
"""

PAGE_JS = r"""
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  function say(text, bad) { var m = $("clm-message"); m.textContent = text; m.className = bad ? "note error" : "note"; }
  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.detail || r.statusText); return j; }); });
  }
  function showFavourites() {
    fetch("/api/favourites").then(function (r) { return r.json(); }).then(function (j) {
      $("clm-fav-count").textContent = j.levels.length + " kept in " + j.file;
    });
  }
  $("clm-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var body = {n: Number($("clm-n").value), search: $("clm-search").value};
    if ($("clm-difficulty").value.trim()) body.difficulty = $("clm-difficulty").value.trim();
    if ($("clm-novelty").value !== "") body.min_novelty = Number($("clm-novelty").value);
    say("generating...");
    $("clm-go").disabled = true;
    post("/api/generate", body).then(function (j) {
      var data = {gen: j.levels};
      window.clmPlayer.reload(data);
      var picks = $("clm-picks");
      picks.innerHTML = "";
      j.levels.forEach(function (lv, i) {
        var b = document.createElement("button");
        b.type = "button"; b.className = "pick"; b.setAttribute("data-group", "gen"); b.setAttribute("data-index", String(i));
        b.textContent = lv.label; b.title = "pushes " + lv.figures.pushes + ", novelty " + lv.figures.novelty;
        picks.appendChild(b);
      });
      say((j.message ? j.message + " " : "") + j.levels.length + " level(s) after " + j.evaluations + " G evaluations.", !!j.message);
      if (j.levels.length) window.clmPlayer.open("gen", 0);
    }).catch(function (err) { say(err.message, true); })
      .then(function () { $("clm-go").disabled = false; });
  });
  $("clm-fav").addEventListener("click", function () {
    var lv = window.clmPlayer.current();
    if (!lv) { say("open a level first", true); return; }
    post("/api/favourites", {id: lv.id, note: $("clm-note").value}).then(function (j) {
      $("clm-fav-status").textContent = lv.label + " kept (" + j.favourites + " in all)";
      showFavourites();
    }).catch(function (err) { say(err.message, true); });
  });
  showFavourites();
})();
"""


def page_html(run_name: str, searches: list[str], min_novelty: int) -> str:
    options = "".join(f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in searches)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>clm serve: {html.escape(run_name)}</title><style>{PAGE_CSS}{PLAYER_CSS}</style></head><body><main>
<h1>Play and judge new levels</h1>
<div class="note">Run {html.escape(run_name)}: levels from its generator, each playable, of the asked difficulty and novel
(as <code>clm generate</code>). Keep the ones you like: they go to the run folder's favourites.txt, which
<code>clm run --data RUN_DIR/favourites.txt</code> takes back as creative data.</div>
<section><h2>Generate</h2>
<form id="clm-form">
<label>levels <input id="clm-n" type="number" min="1" max="12" value="3"></label>
<label>difficulty (optimal pushes LO:HI) <input id="clm-difficulty" class="wide" placeholder="any"></label>
<label>least novelty <input id="clm-novelty" type="number" min="0" placeholder="{min_novelty}"></label>
<label>search <select id="clm-search">{options}</select></label>
<button id="clm-go" type="submit">Generate</button>
</form>
<p id="clm-message" class="note"></p>
<div class="picks"><span class="pick-title">Levels</span> <span id="clm-picks"></span></div>
{PLAYER_HTML}
<p><label>note <input id="clm-note" maxlength="500" size="40" placeholder="why you like it (optional)"></label>
<button type="button" id="clm-fav">Keep as favourite</button><span id="clm-fav-status"></span></p>
<p class="note" id="clm-fav-count"></p>
</section>
<script type="application/json" id="clm-levels">{json_for_script({})}</script>
<script>{PLAYER_JS}</script><script>{PAGE_JS}</script>
</main></body></html>
"""
