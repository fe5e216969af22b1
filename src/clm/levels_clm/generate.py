"""``clm generate`` for a levels run: new levels, each verified by the solver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_text
from clm.domains.levels import levels_to_tiles, write_levels
from clm.domains.levels.metrics import novelty
from clm.levels_clm.search import cmaes_search, designer_search, load_run, random_search

#: the searches ``clm generate --search`` takes for a levels run (the first is the default)
SEARCHES = ("designer", "random", "cmaes")


def generate(args) -> int:
    """``clm generate`` for a levels run: solver-verified levels into a Boxoban file, metrics in FILE.jsonl."""
    if args.search not in (None, *SEARCHES):
        raise UsageError(f"--search {args.search} is not for levels runs; a levels run takes {', '.join(SEARCHES)}")
    args.search = args.search or "designer"
    lo, hi = 1, 10**9
    if args.difficulty:
        try:
            lo, hi = (int(v) for v in args.difficulty.split(":"))
        except ValueError:
            raise UsageError(f"--difficulty must be LO:HI in optimal pushes (e.g. 4:12), got '{args.difficulty}'")
        if lo < 1 or hi < lo:
            raise UsageError(f"--difficulty {args.difficulty}: need 1 <= LO <= HI")
    run = load_run(args.run_dir)
    k = run.cfg.min_novelty if args.min_novelty is None else args.min_novelty
    run.judge.min_novelty = k
    chosen: list = []
    records: list = []

    def accept(levels, j):
        """Playable, in the difficulty range, novel to the corpus/archive and to
        the levels chosen so far; taken in order."""
        keep = np.zeros(len(levels), bool)
        for i in np.flatnonzero(j.playable & (j.pushes >= lo) & (j.pushes <= hi) & (j.novelty >= k)):
            if len(chosen) >= args.n:
                break
            if chosen and novelty(levels_to_tiles([levels[i]]), levels_to_tiles(chosen))[0] < max(k, 1):
                continue
            chosen.append(levels[i])
            keep[i] = True
        return keep

    budget = args.max_evaluations or 500 * args.n
    rng = np.random.default_rng(args.seed)
    step = max(64, 4 * args.n)
    spent = 0
    while len(chosen) < args.n and spent < budget:
        part = min(step, budget - spent)
        if args.search == "random":
            found = random_search(run.G, run.D, run.judge, part, rng, accept)
        elif args.search == "cmaes":
            found = cmaes_search(run.G, run.D, run.judge, part, int(rng.integers(2**31)), accept)
        else:
            if run.designer is None:
                raise UsageError(f"{args.run_dir} has no designer (designer_search was off); use --search random or cmaes")
            found = designer_search(run.designer, part, accept)
        records.extend(found.records)
        spent += found.evaluations
    if len(chosen) < args.n:
        raise UsageError(f"found only {len(chosen)} of {args.n} levels within {spent} G evaluations; widen "
                         f"--difficulty, lower --min-novelty or raise --max-evaluations")
    out = Path(args.out)
    for i, lv in enumerate(chosen):
        records[i]["name"] = f"{out.stem}-{i}"
    write_levels(out, chosen)
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records[: len(chosen)]))
    print(f"wrote {len(chosen)} verified levels to {out} (metrics in {out}.jsonl) after {spent} G evaluations "
          f"with {args.search} search")
    return 0
