{% raw %}
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
{% endraw %}
