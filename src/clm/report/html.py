"""The CLM's offline HTML report: one self-contained ``report.html`` per run.

It reads the run directory that ``clm run`` writes (config.yaml,
summary.json, metrics.jsonl, levels/, optional evidence.json) and draws:
a status banner, the headline figures, grids of real levels, raw generator
samples and the creative archive, every numeric curve of metrics.jsonl
(grouped), the time share per part, the archive table, the evidence tables
and the config. Images are PNG data URIs; there is no external CSS, script
or font, so the file opens offline in any browser. A missing or damaged
piece makes its section say so; it never stops the report.

The HTML comes from Jinja2 templates with autoescape (templates/: the base
layout, the banner and one template per common section; each domain's
sections, chosen through the registry's ``report_sections``, render their
own package's templates). Python reads the run and computes; templates write.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from markupsafe import Markup

from clm import __version__
from clm.core import plots
from clm.core.checkpoint import read_meta
from clm.core.errors import UserError
from clm.core.html import fmt_value
from clm.core.rundata import (
    NOT_RECORDED,
    is_number,
    metric_series,
    null_steps,
    read_json_object,
    read_jsonl,
    read_text,
    row_step,
)
from clm.core.rundir import atomic_write_text
from clm.core.templating import render as render_template
from clm.engine import registry

REPORT_NAME = "report.html"
_PACKAGE = "clm.report"

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



def _render(template: str, /, **context: Any) -> Markup:
    return render_template(_PACKAGE, template, **context)


def _plot(make_png: Callable[..., bytes], *args) -> tuple[bytes | None, str | None]:
    """(PNG, None), or (None, why) when the plot fails: one bad curve must not stop the report."""
    try:
        return make_png(*args), None
    except Exception as e:  # noqa: BLE001
        return None, str(e)


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

    def banner(self) -> dict[str, Any]:
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
        return {"style": style, "status": s.get("status", "unknown"), "title": title, "message": message,
                "warnings": warnings}

    def section_headline(self) -> str:
        s = self.summary_dict
        if self.summary.value is None:
            return _render("headline.html.j2", missing_note=self.summary.note or f"summary.json: {NOT_RECORDED}")
        cards = []
        headline = self.spec.headline_figures if self.spec is not None else ()
        for key, label, kind in headline:
            if key == "text_constraint_fraction" and key not in s:
                continue  # a text run without a constraint: nothing to show, and nothing missing
            value = fmt_value(s[key], kind) if key in s and s[key] is not None else None
            cards.append({"key": key, "label": label, "value": value})
        known = {k for k, _, _ in headline} | {"status", "message"}
        others = [(k, v) for k, v in s.items() if k not in known and not k.startswith("time_share_")]
        return _render("headline.html.j2", missing_note=None, cards=cards, others=others)

    def section_curves(self) -> str:
        rows = self.metric_rows
        if self.metrics.value is None:
            return _render("curves.html.j2", missing_note=self.metrics.note or f"metrics.jsonl: {NOT_RECORDED}",
                           notes=[])
        series = {k: v for k, v in metric_series(rows).items() if not k.startswith("time_share_")}
        if not series:
            return _render("curves.html.j2", missing_note="metrics.jsonl holds no numeric values to plot",
                           notes=[self.metrics.note])
        groups: dict[str, dict[str, tuple[list[float], list[float]]]] = {name: {} for name in CURVE_ORDER}
        for key, values in series.items():
            for name, belongs in CURVE_GROUPS:
                if belongs(key):
                    groups[name][key] = values
                    break
        shown = []
        for name, group in groups.items():
            if not group:
                continue
            png, error = _plot(plots.curves_png, group)
            shown.append({"name": name, "alt": f"{name}: " + ", ".join(group), "png": png, "error": error})
        return _render("curves.html.j2", missing_note=None, n_rows=len(rows), groups=shown, notes=[self.metrics.note])

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
            return _render("time.html.j2", rows=[])
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
        chart_png, chart_error = _plot(plots.time_share_png, chart, colors)
        per_round = None
        if over_rounds and len(steps) >= 2:
            png, error = _plot(plots.time_share_over_rounds_png, steps, over_rounds, colors)
            per_round = {"png": png, "error": error}
        return _render("time.html.j2", source=source, chart_png=chart_png, chart_error=chart_error, columns=columns,
                       rows=rows, per_round=per_round)

    def section_config(self) -> str:
        return _render("config.html.j2", text=self.config.value,
                       missing_note=self.config.note or f"config.yaml: {NOT_RECORDED}")

    def section_attributions(self) -> str:
        """Why the agent and D decide as they do (``attributions/``, written by
        ``clm explain``, which ``clm run`` calls before its report): each
        explained input's heat maps, its figures, and the sanity check."""
        rec = read_json_object(self.run_dir / "attributions" / "attributions.json")
        if rec.value is None:
            return _render("attributions.html.j2", missing_note=(
                f"attributions/{rec.note or 'attributions.json: ' + NOT_RECORDED}. Compute them with "
                f"clm explain {self.run_dir} (needs Captum, pinned in requirements.lock)."))
        r = rec.value
        method = r.get("method") or {}
        agent = self.spec.agent_name if self.spec is not None else "agent"
        items = []
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
            items.append({"title": item.get("name") or item.get("word") or item.get("picture"), "bits": "; ".join(bits),
                          "picture": item.get("picture"), "png": path.read_bytes() if path.is_file() else None})
        sanity = r.get("sanity")
        rows = None
        if isinstance(sanity, dict):
            rows = []
            for who, s in sanity.items():
                if not isinstance(s, dict):
                    continue
                t = s.get("thresholds") or {}
                rows.append([who, s.get("control_spearman_ig"), s.get("random_spearman_ig"),
                             s.get("random_spearman_saliency"),
                             f"< {fmt_value(t.get('random_below'))} and > {fmt_value(t.get('control_above'))}" if t else "",
                             "not judged" if "passed" not in s else "passed" if s["passed"] else "FAILED"])
        return _render("attributions.html.j2", missing_note=None, r=r, method=method,
                       ig=method.get("integrated_gradients") or {}, items=items, sanity_rows=rows)

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
        """The whole report as one HTML document (templates/base.html.j2)."""
        sections = []
        for anchor, title, build in self.sections():
            try:
                content = Markup(build())  # a section's renderer returns HTML it escaped itself (its template's)
            except Exception as e:  # one broken section must not hide the others
                content = _render("section_error.html.j2", error=f"{type(e).__name__}: {e}")
            if not content.strip():  # the registry's contract: a section that renders "" is left out
                continue
            sections.append({"id": anchor, "title": title, "content": content})
        stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        return _render("base.html.j2", name=self.run_dir.resolve().name, run_path=str(self.run_dir.resolve()),
                       stamp=stamp, version=__version__, banner=self.banner(), sections=sections) + "\n"


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
