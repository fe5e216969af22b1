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

import datetime as _dt
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from clm.core import plots
from clm.core.checkpoint import read_meta
from clm.core.errors import UserError
from clm.core.html import esc, fmt_value, img_tag, missing, note_list, table_html
from clm.core.rundata import NOT_RECORDED, is_number, metric_series, null_steps, read_json_object, read_jsonl, read_text, row_step
from clm.core.rundir import atomic_write_text
from clm.engine import registry

REPORT_NAME = "report.html"

# Files every run writes; a folder with none of them is not a run directory.
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "checkpoints")

# status -> (banner style, headline sentence)
STATUS_TEXT: dict[str, tuple[str, str]] = {
    "ok": ("ok", "The run finished normally."),
    "gan_diverged": ("bad", "The GAN diverged. The run stopped rather than write nonsense levels."),
    "player_stuck": ("bad", "The player is stuck: its solve rate stayed at zero. The run stopped."),
    "interrupted": ("warn", "The run was interrupted before it finished; the figures are partial."),
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


def _checkpoint_domain(run_dir: Path) -> str | None:
    """The domain a run's checkpoint names (a run that stopped before its summary), or None."""
    try:
        return str(read_meta(run_dir / "checkpoints" / "clm")[1].get("domain") or "") or None
    except Exception:  # noqa: BLE001 - no readable checkpoint: the report still opens
        return None


class RunReport:
    """Reads one run directory and renders its report as an HTML string."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise UserError(f"{self.run_dir}: not a directory; give the run directory that `clm run` wrote")
        self.config = read_text(self.run_dir / "config.yaml")
        self.summary = read_json_object(self.run_dir / "summary.json")
        self.metrics = read_jsonl(self.run_dir / "metrics.jsonl")
        self.domain = str(self.summary_dict.get("domain") or _checkpoint_domain(self.run_dir)
                          or registry.DEFAULT_DOMAIN)
        #: the domain's registration (None for a domain this installation does not know: common sections only)
        self.spec = registry.get(self.domain) if self.domain in registry.names() else None

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
        headline = self.spec.headline_figures if self.spec is not None else ()
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

    def section_curves(self) -> str:
        rows = self.metric_rows
        if self.metrics.value is None:
            return missing(self.metrics.note or f"metrics.jsonl: {NOT_RECORDED}")
        series = {k: v for k, v in metric_series(rows).items() if not k.startswith("time_share_")}
        if not series:
            return missing("metrics.jsonl holds no numeric values to plot") + note_list([self.metrics.note])
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
        out.append(note_list([self.metrics.note]))
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
        agent = self.spec.agent_name if self.spec is not None else "agent"
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
    def sections(self) -> list[tuple[str, str, Callable[[], str]]]:
        """The common sections and the domain's own (from the registry), in the report's order."""
        spec = self.spec
        own = spec.report_sections if spec is not None else ()
        top = [(s.id, s.title, partial(s.render, self)) for s in own if s.place == "top"]
        bottom = [(s.id, s.title, partial(s.render, self)) for s in own if s.place != "top"]
        agent = spec.agent_name if spec is not None else "agent"
        return [("headline", "Headline figures", self.section_headline), *top,
                ("attributions", f"Why: attributions of the {agent} and D", self.section_attributions),
                ("curves", "Curves", self.section_curves), ("time", "Time share per part", self.section_time),
                *bottom, ("config", "Config", self.section_config)]

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
            f"<title>CLM report: {esc(name)}</title><style>{CSS}</style></head><body><main>"
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
