"""``clm generate`` for a levels run: new levels, each verified by the solver.
:func:`find_levels` is the search itself (``clm serve`` asks it too)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_text
from clm.domains.levels import levels_to_tiles, write_levels
from clm.domains.levels.metrics import max_optimal_pushes, novelty
from clm.engine.collect import shortfall_exit
from clm.levels_clm.edit_qd import CachedJudge
from clm.levels_clm.qd import run_qd_search
from clm.levels_clm.qd_grid import QDGrid
from clm.levels_clm.search import load_run
from clm.levels_clm.searches import get_search, search_names

#: parse_difficulty's HI when no range is given: any difficulty
ANY_PUSHES = 10**9


def parse_difficulty(text: str | None, name: str = "--difficulty") -> tuple[int, int]:
    """``LO:HI`` optimal pushes as (lo, hi); None or "" is any difficulty."""
    if not text:
        return 1, ANY_PUSHES
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"{name} must be LO:HI in optimal pushes (e.g. 4:12), got '{text}'")
    if lo < 1 or hi < lo:
        raise UsageError(f"{name} {text}: need 1 <= LO <= HI")
    return lo, hi


def find_levels(run, n: int, search: str, lo: int, hi: int, min_novelty: int, seed: int,
                max_evaluations: int = 0, avoid: list | None = None) -> tuple[list, list, int]:
    """Up to ``n`` levels of a loaded run (``load_run``) that are playable, of
    ``lo``..``hi`` optimal pushes, at least ``min_novelty`` from the corpus,
    the archive, ``avoid`` and each other, found by the QD search ``search``
    within ``max_evaluations`` G evaluations (0: 500 n). Returns (levels,
    their records, G evaluations spent); fewer than ``n`` when the budget ran out."""
    entry = get_search(search)
    if entry.needs_designer and run.designer is None:
        raise UsageError(f"this run has no designer (designer_search was off); use another search "
                         f"({', '.join(search_names(designer=False))})")
    shape = tuple(run.judge.corpus_tiles.shape[1:])
    boxes = entry.max_boxes or run.judge.n_boxes or 1
    most = max_optimal_pushes(shape, boxes)
    if lo > most or most < hi < ANY_PUSHES:
        raise UsageError(f"difficulty {lo}:{hi} lies outside what this run's levels allow: {shape[0]}x{shape[1]} "
                         f"levels of at most {boxes} box(es) (the {search} search) hold at most {most} optimal "
                         f"pushes (clm.domains.levels.metrics.max_optimal_pushes); ask for a range within 1:{most}")
    k = min_novelty
    run.judge.min_novelty = k
    chosen: list = []
    records: list = []
    avoid_tiles = levels_to_tiles(avoid) if avoid else None

    def accept(levels, j):
        """Playable, in the difficulty range, novel to the corpus/archive, to ``avoid`` and to
        the levels chosen so far; taken in order. True (stop the search) once it has ``n``."""
        for i in np.flatnonzero(j.playable & (j.pushes >= lo) & (j.pushes <= hi) & (j.novelty >= k)):
            if len(chosen) >= n:
                break
            tiles = levels_to_tiles([levels[i]])
            if chosen and novelty(tiles, levels_to_tiles(chosen))[0] < max(k, 1):
                continue
            if avoid_tiles is not None and novelty(tiles, avoid_tiles)[0] < max(k, 1):
                continue
            chosen.append(levels[i])
            records.append({"realism": float(j.realism[i]), "pushes": int(j.pushes[i]),
                            "novelty": float(j.novelty[i]), "score": float(j.score[i])})
        return len(chosen) >= n

    budget = max_evaluations or 500 * n
    # an edit search meets a layout again (edits of the same elites): its entry asks for a cache by layout
    judge = CachedJudge(run.judge) if entry.caches_layouts else run.judge
    problem = run_qd_search(search, run.G, run.D, judge, budget, seed, run.cfg.qd_descriptor,
                            designer=run.designer, grid=QDGrid(run.cfg.qd_descriptor, min_novelty=k),
                            on_judged=accept)
    return chosen, records, problem.evaluations


def generate(args) -> int:
    """``clm generate`` for a levels run: solver-verified levels into a Boxoban file, metrics in FILE.jsonl."""
    search = args.search or "designer"
    entry = get_search(search, "--search")
    lo, hi = parse_difficulty(args.difficulty)
    run = load_run(args.run_dir)
    if entry.needs_designer and run.designer is None:
        raise UsageError(f"{args.run_dir} has no designer (designer_search was off); use another --search "
                         f"({', '.join(search_names(designer=False))})")
    k = run.cfg.min_novelty if args.min_novelty is None else args.min_novelty
    chosen, records, spent = find_levels(run, args.n, search, lo, hi, k, args.seed, args.max_evaluations)
    out = Path(args.out)
    for i, lv in enumerate(chosen):
        records[i]["name"] = f"{out.stem}-{i}"
    write_levels(out, chosen)
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records[: len(chosen)]))
    print(f"wrote {len(chosen)} verified levels to {out} (metrics in {out}.jsonl) after {spent} evaluations "
          f"with {search} search")
    if len(chosen) < args.n:
        print("hint: widen --difficulty or lower --min-novelty for more", file=sys.stderr)
    return shortfall_exit(len(chosen), args.n, spent, "distinct verified levels", "evaluations", args.strict)
