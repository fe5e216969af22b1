"""The levels domain's sections of a run's report: grids of real, generated
and archived levels, the archive table, the QD grid and the evidence tables."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from clm.core.errors import UserError
from clm.core.plots import figure_png
from clm.core.rundata import NOT_RECORDED, Loaded, read_json_object, read_jsonl
from clm.core.templating import render
from clm.domains.levels import read_levels
from clm.domains.levels.play import level_payload, play_html, solve_for_play
from clm.domains.levels.render import render_grid
from clm.levels_clm.edit_episodes import FILE as EDIT_EPISODES_FILE
from clm.levels_clm.edit_episodes import read_edit_episodes

_PACKAGE = "clm.levels_clm"
MAX_GRID_LEVELS = 32
MAX_ARCHIVE_GRID = 48

# summary.json key -> (label, kind); kind picks the formatting.
HEADLINE_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("creative_levels", "Creative levels (archive size)", "count"),
    ("generated_playable_fraction", "Playable raw G samples (solver)", "fraction"),
    ("creative_novelty_mean", "Mean novelty of the archive (min Hamming distance to corpus)", "number"),
    ("creative_difficulty_mean", "Mean difficulty of the archive (optimal pushes)", "number"),
    ("tile_kl", "Tile-pattern KL, archive vs corpus (lower is closer in style)", "number"),
    ("player_solve_rate", "Player solve rate on held-out real levels", "fraction"),
    ("wall_seconds", "Wall-clock time", "seconds"),
)

EVIDENCE_TITLES = {
    "problem1": "Problem 1: generated levels in the player's training",
    "problem2": "Problem 2: agent-guided search for creative levels",
    "problem3": "Problem 3: complexity against learning efficiency",
}


def read_level_file(path: Path) -> Loaded:
    """Levels of a Boxoban file (invalid puzzles skipped and counted)."""
    if not path.is_file():
        return Loaded(None, f"levels/{path.name}: {NOT_RECORDED}")
    try:
        levels = read_levels(path, skip_invalid=True)
    except UserError as e:
        return Loaded(None, f"levels/{path.name}: {e}")
    note = None
    if levels.skipped:
        note = f"levels/{path.name}: {levels.skipped} invalid puzzle(s) left out"
    if not levels:
        return Loaded(None, note or f"levels/{path.name}: holds no levels")
    return Loaded(levels, note)



def _levels(report, name: str) -> Loaded:
    return read_level_file(report.run_dir / "levels" / name)


def level_grid_png(levels: Sequence, labels: Sequence[str] | None = None, cols: int = 8) -> bytes:
    """Levels drawn side by side by the levels domain's renderer, as PNG."""
    largest = max(max(lv.shape) for lv in levels)
    cell = int(max(6, min(16, 160 // max(1, largest))))
    image = render_grid(list(levels), cols=cols, cell=cell, labels=labels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def qd_heatmap_png(quality: Sequence[Sequence[float | None]], names: Sequence[str],
                   ranges: Sequence[Sequence[float]]) -> bytes:
    """A QD grid's cell qualities as a heat map: rows the first descriptor's
    bins (upward), columns the second's; empty cells blank."""
    q = np.array([[np.nan if v is None else float(v) for v in row] for row in quality], dtype=float)
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    (y0, y1), (x0, x1) = ranges
    image = ax.imshow(np.ma.masked_invalid(q), origin="lower", aspect="auto", cmap="viridis",
                      extent=(x0, x1, y0, y1), interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cell quality (judge's score)")
    ax.set_ylabel(f"{names[0]} (top bin: at least)")
    ax.set_xlabel(names[1])
    fig.tight_layout()
    return figure_png(fig)


def _grid(report, loaded: Loaded, title: str, what: str, limit: int, label_prefix: str | None = None,
          generated: bool = False) -> dict[str, Any]:
    """One grid of levels for levels.html.j2: its PNG and note, or why it is missing."""
    grid: dict[str, Any] = {"title": title, "what": what, "missing": None, "error": None}
    if loaded.value is None:
        text = loaded.note or NOT_RECORDED
        if generated and report.summary_dict.get("status") == "gan_diverged":
            text += " (the GAN diverged, so the run kept no generated levels)"
        return {**grid, "missing": text}
    levels = list(loaded.value)
    shown = levels[:limit]
    labels = [f"{label_prefix}{i}" for i in range(len(shown))] if label_prefix is not None else None
    try:
        png = level_grid_png(shown, labels=labels)
    except Exception as e:  # a level the renderer cannot draw must not stop the report
        return {**grid, "error": str(e)}
    sizes = sorted({f"{lv.shape[0]}x{lv.shape[1]}" for lv in levels})
    note = f"{len(levels)} level(s), size {', '.join(sizes)}"
    if len(levels) > len(shown):
        note += f"; showing the first {len(shown)}"
    return {**grid, "png": png, "note": note, "loaded_note": loaded.note}


def section_levels(report) -> str:
    grids = [_grid(report, _levels(report, "real.txt"), "Real levels (the run's corpus)", "real levels", MAX_GRID_LEVELS),
             _grid(report, _levels(report, "samples.txt"), "Raw generator samples (G, before any selection)",
                   "raw G samples", MAX_GRID_LEVELS, generated=True),
             _grid(report, _levels(report, "archive.txt"), "The creative archive (numbers match the archive table)",
                   "creative archive", MAX_ARCHIVE_GRID, label_prefix="#", generated=True)]
    return render(_PACKAGE, "levels.html.j2", grids=grids)


def section_play(report) -> str:
    """The levels of the grids above, playable in the page, with the solver's
    solutions (solved while the report is written, within play.SOLVE_BUDGET_S in all)."""
    groups = [("real", "Real", "real.txt", MAX_GRID_LEVELS, "r"),
              ("samples", "G's samples", "samples.txt", MAX_GRID_LEVELS, "s"),
              ("archive", "Archive", "archive.txt", MAX_ARCHIVE_GRID, "#")]
    shown = []
    for gid, title, name, limit, prefix in groups:
        loaded = _levels(report, name)
        shown.append((gid, title, list(loaded.value)[:limit] if loaded.value is not None else [], prefix))
    everything = [lv for _, _, levels, _ in shown for lv in levels]
    if not everything:
        return render(_PACKAGE, "no_levels.html.j2")
    solves = solve_for_play(everything)
    out, at = [], 0
    for gid, title, levels, prefix in shown:
        labels = [f"{prefix}{i}" for i in range(len(levels))]
        out.append((gid, title, level_payload(levels, solves[at:at + len(levels)], labels)))
        at += len(levels)
    return play_html(out)


def section_archive_table(report) -> str:
    archive_meta = read_jsonl(report.run_dir / "levels" / "archive.jsonl")
    if archive_meta.value is None:
        return render(_PACKAGE, "archive_table.html.j2",
                      missing_note=archive_meta.note or f"levels/archive.jsonl: {NOT_RECORDED}")
    if not archive_meta.value:
        return render(_PACKAGE, "archive_table.html.j2",
                      missing_note="levels/archive.jsonl is empty: the archive holds no levels")
    return render(_PACKAGE, "archive_table.html.j2", missing_note=None, records=archive_meta.value,
                  note=archive_meta.note)


def section_qd(report) -> str:
    qd_grid = read_json_object(report.run_dir / "qd_grid.json")
    if qd_grid.value is None:
        return render(_PACKAGE, "qd.html.j2", missing_note=qd_grid.note or f"qd_grid.json: {NOT_RECORDED}")
    g = qd_grid.value
    try:
        names, quality, ranges = g["descriptors"], g["quality"], g["ranges"]
        coverage, score, filled = float(g["coverage"]), float(g["qd_score"]), int(g["filled"])
    except (KeyError, TypeError, ValueError) as e:
        return render(_PACKAGE, "qd.html.j2",
                      missing_note=f"qd_grid.json lacks a field or has a wrong one ({type(e).__name__}: {e})")
    if filled == 0:
        return render(_PACKAGE, "qd.html.j2", missing_note=(
            f"the QD grid is empty: none of the {g.get('levels_offered', 0)} judged levels was playable and novel"))
    return render(_PACKAGE, "qd.html.j2", missing_note=None, names=names, coverage=coverage, score=score,
                  filled=filled, offered=g.get("levels_offered", "?"), png=qd_heatmap_png(quality, names, ranges))


def section_evidence(report) -> str:
    evidence = read_json_object(report.run_dir / "evidence.json")
    if evidence.value is None:
        reason = evidence.note or f"evidence.json: {NOT_RECORDED}"
        return render(_PACKAGE, "evidence.html.j2", missing_note=(
            f"{reason}. Run benchmarks/clm_evidence.py to measure the three problems (it writes the evidence "
            f"tables that this section shows)."))
    ev = evidence.value
    keys = list(EVIDENCE_TITLES) + [k for k in ev if k not in EVIDENCE_TITLES]
    return render(_PACKAGE, "evidence.html.j2", missing_note=None, evidence=ev,
                  problems=[(k, EVIDENCE_TITLES.get(k, k)) for k in keys])


def _pushes_text(p: int) -> str:
    return "unplayable" if p < 0 else f"{p} push{'es' if p != 1 else ''}"


def section_edits(report) -> str:
    """The edit coupling's best episodes (``edit_search=true``) as before/after pictures
    with the judge's verdict; left out for a run without edits."""
    path = report.run_dir / "levels" / EDIT_EPISODES_FILE
    ran_edits = any("edit_playable_fraction" in r for r in report.metric_rows)
    if not path.exists() and not ran_edits:
        return ""  # the run had edit_search off: nothing to show
    loaded = read_edit_episodes(path)
    if loaded.value is None:
        return render(_PACKAGE, "edit_episodes.html.j2", missing_note=loaded.note)
    rec = loaded.value
    episodes = []
    for i, ep in enumerate(rec.episodes):
        before, after = rec.levels(i)
        labels = [f"before: {_pushes_text(ep['pushes_before'])}", f"after: {_pushes_text(ep['pushes_after'])}"]
        try:
            png, error = level_grid_png([before, after], labels=labels, cols=2), None
        except Exception as e:  # a level the renderer cannot draw must not stop the report
            png, error = None, str(e)
        edits = ", ".join(f"{e['kind']} at ({e['row'] + 1}, {e['col'] + 1})" for e in ep["edits"])
        episodes.append({**ep, "png": png, "error": error, "edit_text": edits,
                         "gain": (ep["pushes_after"] - ep["pushes_before"]) if ep["playable"] else None})
    return render(_PACKAGE, "edit_episodes.html.j2", missing_note=None, rec=rec, episodes=episodes)
