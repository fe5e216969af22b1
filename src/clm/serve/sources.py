"""What ``clm serve`` serves: levels generated on demand from a finished
levels run, and the favourites a person keeps, saved in the run folder.

:class:`RunLevels` holds the run's G, D, judge and designer (``load_run``)
and finds levels as ``clm generate`` does (:func:`find_levels`: playable,
in a difficulty range, novel); each is solved once more for the player's
"Replay solution". :class:`Favourites` keeps the levels a person marked in
``RUN_DIR/favourites.txt`` (Boxoban format, so ``clm run --data
RUN_DIR/favourites.txt`` takes them back as creative data, with a person
as the judge) and their records in ``favourites.jsonl``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from clm.core.checkpoint import read_meta
from clm.core.errors import UserError
from clm.core.rundir import atomic_write_text
from clm.domains.levels import Level, read_levels, write_levels
from clm.domains.levels.play import level_payload, solve_for_play
from clm.levels_clm.generate import find_levels
from clm.levels_clm.search import load_run
from clm.levels_clm.searches import search_names

FAVOURITES = "favourites.txt"
FAVOURITES_RECORDS = "favourites.jsonl"


def check_levels_run(run_dir: str | Path) -> Path:
    """``run_dir`` if it is a finished ``clm run`` of the levels domain; else a
    UserError (exit 2) saying what it is instead."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path}: no such directory; give the folder a levels `clm run` wrote", exit_code=2)
    try:
        _, meta = read_meta(path / "checkpoints" / "clm")
    except UserError as e:
        raise UserError(f"{path} is not a finished levels run: {e}", exit_code=2) from None
    if meta.get("kind") != "clm":
        raise UserError(f"{path} is not a CLM run (its checkpoint is a '{meta.get('kind')}'); give the folder a "
                        f"levels `clm run` wrote", exit_code=2)
    domain = meta.get("domain", "levels")
    if domain != "levels":
        raise UserError(f"{path} is a run of the {domain} domain; clm serve plays Sokoban levels: give a levels run",
                        exit_code=2)
    summary_path = path / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path} is not a finished levels run: {summary_path.name} is missing or unreadable (the "
                        f"run is still going or stopped early; resume it with clm run --resume {path})",
                        exit_code=2) from None
    if not isinstance(summary, dict) or summary.get("status") == "gan_diverged":
        raise UserError(f"{path}: the run's GAN diverged, so it has no G to generate levels from", exit_code=2)
    return path


class RunLevels:
    """Levels generated on demand from a finished levels run."""

    def __init__(self, run_dir: str | Path, seed: int = 0):
        self.run_dir = check_levels_run(run_dir)
        self.run = load_run(self.run_dir)
        self.rng = np.random.default_rng(seed)
        self.min_novelty = int(self.run.cfg.min_novelty)
        self.searches = search_names(designer=self.run.designer is not None)
        if "designer" in self.searches:  # the run's own designer first: clm generate's default
            self.searches.remove("designer")
            self.searches.insert(0, "designer")

    def generate(self, n: int, search: str, lo: int, hi: int, min_novelty: int, max_evaluations: int,
                 avoid: list[Level]) -> tuple[list[Level], list[dict[str, Any]], int]:
        if search not in self.searches:
            raise UserError(f"search {search!r} is not available for this run; choose one of "
                            f"{', '.join(self.searches)}")
        # each request a new seed from the server's generator: asking again gives new levels
        return find_levels(self.run, n, search, lo, hi, min_novelty, int(self.rng.integers(2**31)), max_evaluations,
                           avoid)


class Favourites:
    """The levels a person marked, in ``RUN_DIR/favourites.txt`` and ``.jsonl`` (each write atomic)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / FAVOURITES
        self.records_path = Path(run_dir) / FAVOURITES_RECORDS
        self.lock = threading.Lock()

    def levels(self) -> list[Level]:
        return list(read_levels(self.path)) if self.path.is_file() else []

    def records(self) -> list[dict[str, Any]]:
        if not self.records_path.is_file():
            return []
        return [json.loads(line) for line in self.records_path.read_text().splitlines() if line.strip()]

    def add(self, level: Level, record: dict[str, Any]) -> int:
        """Keep ``level`` (unless the same level is kept already); returns how many are kept."""
        with self.lock:
            levels, records = self.levels(), self.records()
            if any(lv.to_text() == level.to_text() for lv in levels):
                return len(levels)
            levels.append(level)
            records.append({**record, "index": len(levels) - 1, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            write_levels(self.path, levels)
            atomic_write_text(self.records_path, "".join(json.dumps(r) + "\n" for r in records))
            return len(levels)


def payload(levels: list[Level], records: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """The player's JSON for generated levels, each solved again for its replay, with its id and figures."""
    out = level_payload(levels, solve_for_play(levels), labels=ids)
    for item, rec, level_id in zip(out, records, ids):
        item.update(id=level_id, figures={k: v for k, v in rec.items() if k in ("realism", "pushes", "novelty", "score")})
    return out
