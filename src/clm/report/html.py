"""The CLM's offline HTML report: one self-contained ``report.html`` per run.

It reads the run directory that ``clm run`` writes (config.yaml,
summary.json, metrics.jsonl, levels/, optional evidence.json) and draws:
a status banner, the headline figures, grids of real levels, raw generator
samples and the creative archive, every numeric curve of metrics.jsonl
(grouped), the time share per part, the archive table, the evidence tables
and the config. Images are PNG data URIs; there is no external CSS, script
or font, so the file opens offline in any browser. A missing or damaged
piece makes its section say so; it never stops the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_text
from clm.report import plots
from clm.report.play import PLAYER_CSS, level_payload, play_html, solve_for_play
from clm.report.rundata import (
    NOT_RECORDED,
    Loaded,
    is_number,
    metric_series,
    null_steps,
    read_json_object,
    read_jsonl,
    read_level_file,
    read_text,
    row_step,
)

REPORT_NAME = "report.html"

# Files the report knows; a folder with none of them is not a run directory.
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "levels", "evidence.json")

# status -> (banner style, headline sentence)
STATUS_TEXT: dict[str, tuple[str, str]] = {
    "ok": ("ok", "The run finished normally."),
    "gan_diverged": ("bad", "The GAN diverged. The run stopped rather than write nonsense levels."),
    "player_stuck": ("bad", "The player is stuck: its solve rate stayed at zero. The run stopped."),
    "interrupted": ("warn", "The run was interrupted before it finished; the figures are partial."),
}

# summary.json key -> (label, kind); kind picks the formatting.
HEADLINE: list[tuple[str, str, str]] = [
    ("creative_levels", "Creative levels (archive size)", "count"),
    ("generated_playable_fraction", "Playable raw G samples (solver)", "fraction"),
    ("creative_novelty_mean", "Mean novelty of the archive (min Hamming distance to corpus)", "number"),
    ("creative_difficulty_mean", "Mean difficulty of the archive (optimal pushes)", "number"),
    ("tile_kl", "Tile-pattern KL, archive vs corpus (lower is closer in style)", "number"),
    ("player_solve_rate", "Player solve rate on held-out real levels", "fraction"),
    ("wall_seconds", "Wall-clock time", "seconds"),
]

# the art domain's headline (``clm run --domain art``)
ART_HEADLINE: list[tuple[str, str, str]] = [
    ("creative_canvases", "Creative canvases (archive size)", "count"),
    ("canvas_creative_fraction", "Painter's canvases that are creative (realistic, recognisable, novel)", "fraction"),
    ("canvas_realism", "D's realism of the painter's canvases", "number"),
    ("canvas_recognisable_fraction", "Painter's canvases the digits classifier recognises", "fraction"),
    ("canvas_fd_clf_ratio", "FD-clf of the painter's canvases / the real floor", "number"),
    ("plain_gan_fd_clf_ratio", "FD-clf of G's plain samples / the real floor", "number"),
    ("canvas_coverage", "Coverage of the held-out digits by the painter's canvases", "fraction"),
    ("g_evaluations", "G evaluations", "count"),
]
# the text domain's headline (``clm run --domain text``)
TEXT_HEADLINE: list[tuple[str, str, str]] = [
    ("creative_words", "Creative words (archive size)", "count"),
    ("text_creative_fraction", "Writer's words that are creative (new, real to D, fluent, meeting the constraint)",
     "fraction"),
    ("plain_gan_creative_fraction", "G's plain samples that are creative", "fraction"),
    ("text_realism", "D's realism of the writer's words", "number"),
    ("text_fluency", "Fluency of the writer's words (1: as likely per letter as the median real word)", "number"),
    ("text_novel_fraction", "Writer's words that are new (in no split of the corpus)", "fraction"),
    ("text_constraint_fraction", "Writer's words meeting the constraint", "fraction"),
    ("g_evaluations", "G evaluations", "count"),
]
# art pictures: file in pictures/ -> (title, note)
ART_PICTURES = [
    ("episodes.png", "The painter at work", "One row per episode of the greedy painter at its last evaluation: "
     "the canvas from blank (left) to the finished work (right), one column per action."),
    ("gallery.png", "The creative gallery", "Creative canvases in pairs: each canvas, then the training image "
     "nearest to it (a canvas that copied a training digit would look like its neighbour)."),
    ("plain_gan.png", "G's plain samples", "G's samples from a blank canvas at the end of the run."),
    ("real.png", "Real digits", "Training images, resized to the canvas."),
]

EVIDENCE_TITLES = {
    "problem1": "Problem 1: generated levels in the player's training",
    "problem2": "Problem 2: agent-guided search for creative levels",
    "problem3": "Problem 3: complexity against learning efficiency",
}

# Curves of metrics.jsonl, grouped by the first predicate that holds; the
# last group takes whatever is left, so new keys always appear.
CURVE_GROUPS: list[tuple[str, Callable[[str], bool]]] = [
    ("Losses", lambda k: k.endswith("loss")),
    ("Player and designer", lambda k: k.startswith(("player_", "designer_", "agent_", "dqn_", "steer_"))),
    ("Archive and counts", lambda k: k.startswith("archive") or k.endswith(("_evaluations", "_env_steps", "_count"))),
    ("Generation quality", lambda k: k.startswith(("generated_", "creative_", "d_", "g_", "gan_"))
     or any(s in k for s in ("novelty", "difficulty", "playable", "realism", "kl", "diversity", "duplicate"))),
    ("Time", lambda k: k == "time" or k.startswith(("time_", "wall_"))
     or k.endswith(("_seconds", "_per_second", "_sec"))),
    ("Other", lambda k: True),
]
# The order in which the groups are shown.
CURVE_ORDER = ["Losses", "Player and designer", "Generation quality", "Archive and counts", "Time", "Other"]

MAX_GRID_LEVELS = 32
MAX_ARCHIVE_GRID = 48
MAX_TABLE_ROWS = 200

CSS = """
:root { --ok:#1b7f3b; --bad:#b00020; --warn:#a15c00; --ink:#1d2330; --muted:#5b6475; --line:#dde2ea; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
       color:var(--ink); background:#f4f6f9; }
main { max-width:1180px; margin:0 auto; padding:20px 24px 48px; }
header h1 { margin:0 0 2px; font-size:26px; }
header .meta { color:var(--muted); font-size:13px; word-break:break-all; }
nav { margin:12px 0 18px; font-size:13px; }
nav a { color:#2457a6; text-decoration:none; margin-right:14px; white-space:nowrap; }
nav a:hover { text-decoration:underline; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
h2 { font-size:19px; margin:0 0 10px; }
h3 { font-size:15px; margin:16px 0 6px; }
.banner { border-radius:8px; padding:14px 18px; margin:14px 0; color:#fff; }
.banner strong { font-size:17px; }
.banner.ok { background:var(--ok); } .banner.bad { background:var(--bad); }
.banner.warn { background:var(--warn); } .banner.unknown { background:#5b6475; }
.banner .msg { margin-top:4px; white-space:pre-wrap; }
.banner ul { margin:6px 0 0; padding-left:20px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(220px,1fr)); gap:10px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 12px; background:#fafbfc; }
.card .v { font-size:22px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; }
.card .k code { display:block; overflow-wrap:anywhere; font-size:11px; }
.card.missing .v { color:var(--muted); font-size:15px; font-weight:400; font-style:italic; }
table { border-collapse:collapse; font-size:13px; margin:6px 0; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:#f0f3f7; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.scroll { overflow-x:auto; max-height:520px; overflow-y:auto; }
img { max-width:100%; height:auto; display:block; margin:6px 0; }
img.levels { image-rendering:pixelated; border:1px solid var(--line); }
img.attribution { border:1px solid var(--line); }
.note { color:var(--muted); font-size:13px; margin:4px 0; }
.missing { color:var(--muted); font-style:italic; }
.error { color:var(--bad); }
pre { background:#f6f8fa; border:1px solid var(--line); border-radius:6px; padding:10px 12px;
      overflow:auto; font-size:12.5px; max-height:600px; }
footer { color:var(--muted); font-size:12px; margin-top:24px; }
"""


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


def _note_list(notes: Sequence[str | None]) -> str:
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes if n)


class RunReport:
    """Reads one run directory and renders its report as an HTML string."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise UserError(f"{self.run_dir}: not a directory; give the run directory that `clm run` wrote")
        self.config = read_text(self.run_dir / "config.yaml")
        self.summary = read_json_object(self.run_dir / "summary.json")
        self.metrics = read_jsonl(self.run_dir / "metrics.jsonl")
        self.evidence = read_json_object(self.run_dir / "evidence.json")
        self.qd_grid = read_json_object(self.run_dir / "qd_grid.json")
        cfg_text = self.config.value or ""
        self.domain = str(self.summary_dict.get("domain") or ("art" if "canvas_size:" in cfg_text else
                                                             "text" if "episode_steps:" in cfg_text and "max_len:" in cfg_text
                                                             else "levels"))
        levels = self.run_dir / "levels"
        self.real = read_level_file(levels / "real.txt")
        self.samples = read_level_file(levels / "samples.txt")
        self.archive = read_level_file(levels / "archive.txt")
        self.archive_meta = read_jsonl(levels / "archive.jsonl")

    # ----------------------------------------------------------------- parts
    @property
    def summary_dict(self) -> dict[str, Any]:
        return self.summary.value if isinstance(self.summary.value, dict) else {}

    @property
    def metric_rows(self) -> list[dict[str, Any]]:
        return self.metrics.value if isinstance(self.metrics.value, list) else []

    def metric_warnings(self) -> list[str]:
        """Signs of trouble read from metrics.jsonl itself: non-finite losses
        and a player solve rate that stays at zero. They back the status
        banner up when summary.json is missing or says less."""
        rows = self.metric_rows
        warnings = []
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k != "step" and k not in keys:
                    keys.append(k)
        for k in (k for k in keys if k.endswith("loss")):  # other keys may be null for "not defined yet"
            bad = null_steps(rows, k)
            if bad:
                warnings.append(f"{k} is non-finite (NaN or infinite, logged as null) at {len(bad)} logged "
                                f"round(s), first at round {fmt_value(bad[0])}")
        series = metric_series(rows)
        solve = [v for v in series.get("player_solve_rate", ([], []))[1] if math.isfinite(v)]
        if len(solve) >= 5:
            tail = solve[-max(5, len(solve) // 2):]
            if all(v == 0 for v in tail):
                warnings.append(f"player_solve_rate is 0 in each of the last {len(tail)} logged rounds")
        return warnings

    def banner(self) -> str:
        """The status line at the top: green for ok, red when the GAN diverged
        or the player is stuck, amber otherwise, with the run's message."""
        s = self.summary_dict
        warnings = self.metric_warnings()
        if self.summary.value is None:
            style = "warn" if self.metric_rows else "unknown"
            title = ("No summary.json: the run is still going or stopped before it finished."
                     if self.metric_rows else "Nothing recorded: this run directory holds no summary or metrics.")
            message = self.summary.note
        else:
            status = str(s.get("status", "")) or None
            if status is None:
                style, title = "unknown", "The run recorded no status."
            elif status in STATUS_TEXT:
                style, title = STATUS_TEXT[status]
            else:
                style, title = "warn", f"The run ended with status {status!r}."
            message = s.get("message")
            if style == "ok" and warnings:
                style = "warn"
                title = "The run says ok, but its metrics show trouble."
        status_word = s.get("status", "unknown")
        parts = [f'<div class="banner {style}" id="status" data-status="{esc(status_word)}">',
                 f"<strong>{esc(title)}</strong>"]
        if message:
            parts.append(f'<div class="msg">{esc(message)}</div>')
        if warnings:
            parts.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
        parts.append("</div>")
        return "".join(parts)

    def section_headline(self) -> str:
        s = self.summary_dict
        if self.summary.value is None:
            return missing(self.summary.note or f"summary.json: {NOT_RECORDED}")
        cards = []
        headline = {"art": ART_HEADLINE, "text": TEXT_HEADLINE}.get(self.domain, HEADLINE)
        for key, label, kind in headline:
            if key == "text_constraint_fraction" and key not in s:
                continue  # a text run without a constraint: nothing to show, and nothing missing
            if key in s and s[key] is not None:
                cards.append(f'<div class="card"><div class="v">{esc(fmt_value(s[key], kind))}</div>'
                             f'<div class="k">{esc(label)} <code>{esc(key)}</code></div></div>')
            else:
                cards.append(f'<div class="card missing"><div class="v">{NOT_RECORDED}</div>'
                             f'<div class="k">{esc(label)} <code>{esc(key)}</code></div></div>')
        known = {k for k, _, _ in headline} | {"status", "message"}
        others = [(k, v) for k, v in s.items() if k not in known and not k.startswith("time_share_")]
        out = f'<div class="cards">{"".join(cards)}</div>'
        if others:
            out += "<h3>Other figures</h3>" + table_html(["key", "value"], others, ["text", "number"])
        return out

    def _grid(self, loaded: Loaded, title: str, what: str, limit: int, label_prefix: str | None = None,
              generated: bool = False) -> str:
        out = f"<h3>{esc(title)}</h3>"
        if loaded.value is None:
            text = loaded.note or NOT_RECORDED
            if generated and self.summary_dict.get("status") == "gan_diverged":
                text += " (the GAN diverged, so the run kept no generated levels)"
            return out + missing(text)
        levels = list(loaded.value)
        shown = levels[:limit]
        labels = [f"{label_prefix}{i}" for i in range(len(shown))] if label_prefix is not None else None
        try:
            png = plots.level_grid_png(shown, labels=labels)
        except Exception as e:  # a level the renderer cannot draw must not stop the report
            return out + f'<p class="error">could not draw {esc(what)}: {esc(e)}</p>'
        sizes = sorted({f"{lv.shape[0]}x{lv.shape[1]}" for lv in levels})
        note = f"{len(levels)} level(s), size {', '.join(sizes)}"
        if len(levels) > len(shown):
            note += f"; showing the first {len(shown)}"
        return out + f'<p class="note">{esc(note)}</p>' + img_tag(png, what, "levels") + _note_list([loaded.note])

    def section_levels(self) -> str:
        return (self._grid(self.real, "Real levels (the run's corpus)", "real levels", MAX_GRID_LEVELS)
                + self._grid(self.samples, "Raw generator samples (G, before any selection)", "raw G samples",
                             MAX_GRID_LEVELS, generated=True)
                + self._grid(self.archive, "The creative archive (numbers match the archive table)",
                             "creative archive", MAX_ARCHIVE_GRID, label_prefix="#", generated=True))

    def section_play(self) -> str:
        """The levels of the grids above, playable in the page, with the
        solver's solutions (solved now, within play.SOLVE_BUDGET_S in all)."""
        groups = [("real", "Real", self.real, MAX_GRID_LEVELS, "r"),
                  ("samples", "G's samples", self.samples, MAX_GRID_LEVELS, "s"),
                  ("archive", "Archive", self.archive, MAX_ARCHIVE_GRID, "#")]
        shown = [(gid, title, list(loaded.value)[:limit] if loaded.value is not None else [], prefix)
                 for gid, title, loaded, limit, prefix in groups]
        everything = [lv for _, _, levels, _ in shown for lv in levels]
        if not everything:
            return missing("no levels to play: the run directory holds no readable level file")
        solves = solve_for_play(everything)
        out, at = [], 0
        for gid, title, levels, prefix in shown:
            labels = [f"{prefix}{i}" for i in range(len(levels))]
            out.append((gid, title, level_payload(levels, solves[at:at + len(levels)], labels)))
            at += len(levels)
        return play_html(out)

    def section_curves(self) -> str:
        rows = self.metric_rows
        if self.metrics.value is None:
            return missing(self.metrics.note or f"metrics.jsonl: {NOT_RECORDED}")
        series = {k: v for k, v in metric_series(rows).items() if not k.startswith("time_share_")}
        if not series:
            return missing("metrics.jsonl holds no numeric values to plot") + _note_list([self.metrics.note])
        groups: dict[str, dict[str, tuple[list[float], list[float]]]] = {name: {} for name in CURVE_ORDER}
        for key, values in series.items():
            for name, belongs in CURVE_GROUPS:
                if belongs(key):
                    groups[name][key] = values
                    break
        out = [f'<p class="note">{len(rows)} logged row(s); x axis: the CLM round (<code>step</code>). '
               f'Gaps are rounds where a key was not logged or was not finite.</p>']
        for name, group in groups.items():
            if not group:
                continue
            out.append(f"<h3>{esc(name)}</h3>")
            try:
                out.append(img_tag(plots.curves_png(group), f"{name}: " + ", ".join(group)))
            except Exception as e:
                out.append(f'<p class="error">could not plot {esc(name)}: {esc(e)}</p>')
        out.append(_note_list([self.metrics.note]))
        return "".join(out)

    def time_shares(self) -> tuple[dict[str, float], str]:
        """Each part's share of the wall-clock time, from summary.json, else
        from the last metrics row that has them; and where they came from."""
        prefix = "time_share_"
        s = self.summary_dict
        shares = {k[len(prefix):]: float(v) for k, v in s.items() if k.startswith(prefix) and is_number(v)}
        if shares:
            return shares, "summary.json"
        for row in reversed(self.metric_rows):
            shares = {k[len(prefix):]: float(v) for k, v in row.items() if k.startswith(prefix) and is_number(v)}
            if shares:
                return shares, f"the last metrics row (round {fmt_value(row.get('step', '?'))})"
        return {}, ""

    def time_shares_per_round(self) -> tuple[list[float], dict[str, list[float]]]:
        """The steps of the metrics rows that log time shares, and each
        part's share at those steps (NaN where a row lacks that part)."""
        prefix = "time_share_"
        rows = [(row_step(r, i), r) for i, r in enumerate(self.metric_rows)
                if any(k.startswith(prefix) and is_number(v) for k, v in r.items())]
        parts: list[str] = []
        for _, r in rows:
            for k in r:
                if k.startswith(prefix) and k[len(prefix):] not in parts:
                    parts.append(k[len(prefix):])
        shares = {p: [float(r[prefix + p]) if is_number(r.get(prefix + p)) else math.nan for _, r in rows]
                  for p in parts}
        return [x for x, _ in rows], shares

    def section_time(self) -> str:
        shares, source = self.time_shares()
        if not shares:
            return missing(f"time share per part: {NOT_RECORDED}")
        ordered = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
        total = sum(ordered.values())
        chart = dict(ordered)
        if 0 < total < 0.995:
            chart["(unaccounted)"] = 1.0 - total
        wall = self.summary_dict.get("wall_seconds")
        columns = ["part", "share"] + (["seconds"] if is_number(wall) else [])
        rows = []
        for part, share in chart.items():
            row: list[Any] = [part, f"{100.0 * share:.1f}%"]
            if is_number(wall):
                row.append(round(share * float(wall), 2))
            rows.append(row)
        steps, over_rounds = self.time_shares_per_round()
        colors = plots.part_colors(list(shares) + [p for p in over_rounds if p not in shares] + ["(unaccounted)"])
        out = [f'<p class="note">From {esc(source)}.</p>']
        try:
            out.append(img_tag(plots.time_share_png(chart, colors), "time share per part"))
        except Exception as e:
            out.append(f'<p class="error">could not plot the time shares: {esc(e)}</p>')
        out.append(table_html(columns, rows, ["text", "text", "number"]))
        if over_rounds and len(steps) >= 2:
            out.append("<h3>Time share per round</h3>")
            try:
                out.append(img_tag(plots.time_share_over_rounds_png(steps, over_rounds, colors),
                                   "time share per round"))
            except Exception as e:
                out.append(f'<p class="error">could not plot the time share per round: {esc(e)}</p>')
        return "".join(out)

    def section_archive_table(self) -> str:
        if self.archive_meta.value is None:
            return missing(self.archive_meta.note or f"levels/archive.jsonl: {NOT_RECORDED}")
        records = self.archive_meta.value
        if not records:
            return missing("levels/archive.jsonl is empty: the archive holds no levels")
        return (f'<p class="note">{len(records)} archived level(s); # is the number under each level in the '
                f"archive grid.</p>" + records_table(records, index_column="#") + _note_list([self.archive_meta.note]))

    def section_qd(self) -> str:
        if self.qd_grid.value is None:
            return missing(self.qd_grid.note or f"qd_grid.json: {NOT_RECORDED}")
        g = self.qd_grid.value
        try:
            names, quality, ranges = g["descriptors"], g["quality"], g["ranges"]
            coverage, score, filled = float(g["coverage"]), float(g["qd_score"]), int(g["filled"])
        except (KeyError, TypeError, ValueError) as e:
            return missing(f"qd_grid.json lacks a field or has a wrong one ({type(e).__name__}: {e})")
        if filled == 0:
            return missing(f"the QD grid is empty: none of the {g.get('levels_offered', 0)} judged levels was "
                           f"playable and novel")
        note = (f'<p class="note">Every level the run judged (G\'s samples and the designer\'s), filed by '
                f"{esc(names[0])} and {esc(names[1])}; a cell keeps its best playable, novel level. "
                f"Coverage {coverage:.3f} ({filled} cells), QD-score {score:.1f}, "
                f"{g.get('levels_offered', '?')} levels offered.</p>")
        return note + img_tag(plots.qd_heatmap_png(quality, names, ranges), "QD grid heat map")

    def section_evidence(self) -> str:
        if self.evidence.value is None:
            reason = self.evidence.note or f"evidence.json: {NOT_RECORDED}"
            return missing(f"{reason}. Run benchmarks/clm_evidence.py to measure the three problems "
                           f"(it writes the evidence tables that this section shows).")
        ev = self.evidence.value
        keys = list(EVIDENCE_TITLES) + [k for k in ev if k not in EVIDENCE_TITLES]
        out = []
        for k in keys:
            body = self._evidence_block(ev[k]) if k in ev else missing(f"{k}: {NOT_RECORDED}")
            out.append(f"<h3>{esc(EVIDENCE_TITLES.get(k, k))}</h3>" + body)
        return "".join(out)

    def _evidence_block(self, block: Any) -> str:
        """One problem's evidence: tables for lists of records, a key/value
        table for scalars, notes as paragraphs; any shape is shown."""
        if isinstance(block, list):
            records = [r for r in block if isinstance(r, dict)]
            return records_table(records) if records else f"<pre>{esc(json.dumps(block, indent=2))}</pre>"
        if not isinstance(block, dict):
            return f"<p>{esc(fmt_value(block))}</p>"
        out = []
        scalars = []
        for key, value in block.items():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                if key != "rows":
                    out.append(f"<h4>{esc(key)}</h4>")
                out.append(records_table(value))
            elif key in ("note", "notes", "conclusion") and isinstance(value, str):
                continue
            elif isinstance(value, dict):
                out.append(f"<h4>{esc(key)}</h4>" + self._evidence_block(value))
            else:
                scalars.append((key, value))
        if scalars:
            out.append(table_html(["key", "value"], scalars, ["text", "number"]))
        for key in ("note", "notes", "conclusion"):
            if isinstance(block.get(key), str):
                out.append(f'<p class="note"><b>{esc(key)}:</b> {esc(block[key])}</p>')
        return "".join(out) or missing("empty")

    def section_config(self) -> str:
        if self.config.value is None:
            return missing(self.config.note or f"config.yaml: {NOT_RECORDED}")
        return f"<pre>{esc(self.config.value)}</pre>"

    def section_attributions(self) -> str:
        """Why the agent and D decide as they do (``attributions/``, written by
        ``clm explain``, which ``clm run`` calls before its report): each
        explained input's heat maps, its figures, and the sanity check."""
        rec = read_json_object(self.run_dir / "attributions" / "attributions.json")
        if rec.value is None:
            return missing(f"attributions/{rec.note or 'attributions.json: ' + NOT_RECORDED}. Compute them with "
                           f"clm explain {self.run_dir} (needs Captum, pinned in requirements.lock).")
        r = rec.value
        method = r.get("method") or {}
        ig = method.get("integrated_gradients") or {}
        agent = {"levels": "player", "art": "painter", "text": "writer"}.get(str(r.get("domain")), "agent")
        out = [f'<p class="note">Inputs: {esc(r.get("source", "?"))}. Explained: {esc(method.get("agent_score", "?"))}'
               f' and {esc(method.get("d_score", "?"))}. Integrated Gradients (Captum {esc(r.get("captum", "?"))}, '
               f'{esc(ig.get("n_steps", "?"))} steps, {esc(ig.get("method", "?"))}; baseline: '
               f'{esc(ig.get("baseline", "?"))}): red cells raised the score against the baseline, blue ones '
               f'lowered it, and a cell\'s values sum over the input to the score minus the baseline\'s (up to the '
               f'convergence delta). Saliency: {esc(method.get("saliency", "?"))}.</p>']
        for item in r.get("items") or []:
            if not isinstance(item, dict):
                continue
            path = self.run_dir / "attributions" / str(item.get("picture", ""))
            bits = []
            if "action" in item:
                bits.append(f"{agent}'s action {fmt_value(item['action'])}: Q {fmt_value(item.get('q_chosen'))}, "
                            f"baseline Q {fmt_value(item.get('q_baseline'))}, IG sum "
                            f"{fmt_value(item.get('player_ig_sum'))}, delta {fmt_value(item.get('player_ig_delta'))}")
            if "realism" in item:
                bits.append(f"D's realism {fmt_value(item['realism'], 'fraction')} (logit "
                            f"{fmt_value(item.get('realism_logit'))}, baseline {fmt_value(item.get('realism_logit_baseline'))}, "
                            f"IG sum {fmt_value(item.get('d_ig_sum'))}, delta {fmt_value(item.get('d_ig_delta'))})")
            title = item.get("name") or item.get("word") or item.get("picture")
            out.append(f"<h3>{esc(title)}</h3><p class=\"note\">{esc('; '.join(bits))}</p>")
            if path.is_file():
                out.append(img_tag(path.read_bytes(), f"attributions of {title}", "attribution"))
            else:
                out.append(missing(f"attributions/{item.get('picture')}: {NOT_RECORDED}"))
        sanity = r.get("sanity")
        out.append("<h3>Sanity check: model-parameter randomisation (Adebayo et al. 2018)</h3>")
        if not isinstance(sanity, dict):
            out.append(missing("not run (clm explain --no-sanity)"))
            return "".join(out)
        rows = []
        for who, s in sanity.items():
            if not isinstance(s, dict):
                continue
            t = s.get("thresholds") or {}
            rows.append([who, s.get("control_spearman_ig"), s.get("random_spearman_ig"),
                         s.get("random_spearman_saliency"),
                         f"< {fmt_value(t.get('random_below'))} and > {fmt_value(t.get('control_above'))}" if t else "",
                         "not judged" if "passed" not in s else "passed" if s["passed"] else "FAILED"])
        out.append('<p class="note">Mean Spearman rank correlation of the per-cell |attribution| with the trained '
                   "network's: recomputed with another integration rule (control: the numerics alone), and with "
                   "every layer re-initialised at random. Attributions that explain the network must change with "
                   "its weights.</p>")
        out.append(table_html(["network", "control (IG)", "randomised (IG)", "randomised (saliency)", "bar", "verdict"],
                              rows, ["text", "number", "number", "number", "text", "text"]))
        return "".join(out)

    # ---------------------------------------------------------------- whole
    def section_art_pictures(self) -> str:
        """The art run's pictures (pictures/*.png), each with what it shows."""
        out = []
        for name, title, note in ART_PICTURES:
            path = self.run_dir / "pictures" / name
            out.append(f"<h3>{esc(title)}</h3>")
            if path.is_file():
                out.append(f'<p class="note">{esc(note)}</p>' + img_tag(path.read_bytes(), title, "levels"))
            else:
                out.append(missing(f"pictures/{name}: {NOT_RECORDED}"))
        return "".join(out)

    def section_art_archive(self) -> str:
        records = read_jsonl(self.run_dir / "pictures" / "archive.jsonl")
        if records.value is None:
            return missing(records.note or f"pictures/archive.jsonl: {NOT_RECORDED}")
        if not records.value:
            return missing("pictures/archive.jsonl is empty: no canvas was creative")
        return (f'<p class="note">{len(records.value)} creative canvas(es), in the gallery\'s order; novelty is the '
                f"distance to the nearest training image over the held-out median's.</p>" + records_table(records.value))

    def section_text_gallery(self) -> str:
        """The creative words, best first, with their scores and nearest training word."""
        records = read_jsonl(self.run_dir / "words" / "archive.jsonl")
        if records.value is None:
            return missing(records.note or f"words/archive.jsonl: {NOT_RECORDED}")
        if not records.value:
            return missing("words/archive.jsonl is empty: no word was creative")
        best = sorted(records.value, key=lambda r: -float(r.get("score", 0)))
        shown = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in best]
        return (f'<p class="note">{len(best)} creative word(s), best score first: new (in no split of the corpus), '
                "at least as real to D as the median training word, fluent; each with the nearest training word "
                "and its edit distance.</p>" + records_table(shown, max_rows=60))

    def section_text_edits(self) -> str:
        """The writer's edit sequences at its last evaluation, and G's plain samples."""
        seqs = read_json_object(self.run_dir / "words" / "edits.json")
        out = []
        if seqs.value is not None and seqs.value.get("episodes"):
            rows = []
            for e in seqs.value["episodes"]:
                steps = [f"{w or '(empty)'}" for w in e["words"]]
                trail = " → ".join(f"{steps[0]}" if i == 0 else f"[{a}] {steps[i]}"
                                   for i, a in enumerate([""] + list(e["actions"])) if i < len(steps))
                rows.append([trail, f"{float(e['return']):.3f}"])
            out.append('<p class="note">One row per episode of the greedy writer: the word after each edit, '
                       "the edit in brackets, and the episode's return.</p>" + table_html(["edits", "return"], rows))
        else:
            out.append(missing(seqs.note or f"words/edits.json: {NOT_RECORDED}"))
        plain = read_text(self.run_dir / "words" / "plain_gan.txt")
        out.append("<h3>G's plain samples</h3>")
        if plain.value:
            words = plain.value.split()[:120]
            out.append(f'<p class="note">G\'s samples from the empty word at the end of the run.</p><p>'
                       f"{esc(', '.join(words))}</p>")
        else:
            out.append(missing(plain.note or f"words/plain_gan.txt: {NOT_RECORDED}"))
        return "".join(out)

    def sections(self) -> list[tuple[str, str, Callable[[], str]]]:
        if self.domain == "text":
            return [
                ("headline", "Headline figures", self.section_headline),
                ("gallery", "Creative words", self.section_text_gallery),
                ("edits", "The writer at work", self.section_text_edits),
                ("attributions", "Why: attributions of the writer and D", self.section_attributions),
                ("curves", "Curves", self.section_curves),
                ("time", "Time share per part", self.section_time),
                ("config", "Config", self.section_config),
            ]
        if self.domain == "art":
            return [
                ("headline", "Headline figures", self.section_headline),
                ("pictures", "Canvases", self.section_art_pictures),
                ("attributions", "Why: attributions of the painter and D", self.section_attributions),
                ("curves", "Curves", self.section_curves),
                ("time", "Time share per part", self.section_time),
                ("archive", "Archive table", self.section_art_archive),
                ("config", "Config", self.section_config),
            ]
        return [
            ("headline", "Headline figures", self.section_headline),
            ("levels", "Levels", self.section_levels),
            ("play", "Play the levels", self.section_play),
            ("attributions", "Why: attributions of the player and D", self.section_attributions),
            ("curves", "Curves", self.section_curves),
            ("time", "Time share per part", self.section_time),
            ("archive", "Archive table", self.section_archive_table),
            ("qd", "Creative archive as a QD grid", self.section_qd),
            ("evidence", "Evidence: the seed's three problems", self.section_evidence),
            ("config", "Config", self.section_config),
        ]

    def render(self) -> str:
        """The whole report as one HTML document."""
        from clm import __version__

        body = []
        for anchor, title, build in self.sections():
            try:
                content = build()
            except Exception as e:  # one broken section must not hide the others
                content = f'<p class="error">this section could not be built: {esc(type(e).__name__)}: {esc(e)}</p>'
            body.append(f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>')
        nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in self.sections())
        stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        name = self.run_dir.resolve().name
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>CLM report: {esc(name)}</title><style>{CSS}{PLAYER_CSS if self.domain == 'levels' else ''}</style>"
            "</head><body><main>"
            f"<header><h1>Creative Learning Model: run report</h1>"
            f"<div class=\"meta\">{esc(self.run_dir.resolve())} &middot; written {esc(stamp)} "
            f"&middot; clm {esc(__version__)}</div></header>"
            f"{self.banner()}<nav>{nav}</nav>{''.join(body)}"
            "<footer>One self-contained file: every picture is embedded; it opens offline.</footer>"
            "</main></body></html>\n"
        )


def build_report_html(run_dir: str | Path) -> str:
    """The report of ``run_dir`` as an HTML string (nothing written)."""
    return RunReport(run_dir).render()


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's offline HTML report and return its path.

    ``out`` defaults to ``run_dir/report.html``. The file is written
    atomically, so a browser never opens half a report. Missing or damaged
    files in the run directory make their section say "not recorded" (or
    why); only a ``run_dir`` that is not a directory raises ``UserError``.
    """
    text = build_report_html(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    atomic_write_text(path, text)
    return path
