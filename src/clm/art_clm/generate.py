"""``clm generate`` for an art run: canvases painted by the run's painter (or G's plain samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clm.art_clm.domain import canvas_key, load_art_run
from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.images import image_grid
from clm.domains.images.art_pictures import png_bytes
from clm.engine.collect import collect_distinct, shortfall_exit


def generate(args) -> int:
    """``clm generate`` for an art run: ``-n`` distinct creative canvases painted
    by the run's painter (or G's plain samples) as a PNG grid, one metrics line
    each in FILE.jsonl; fewer when ``--max-evaluations`` candidates (default
    500 n) give no more (said on stderr; exit 1 with ``--strict``)."""
    search = args.search or "painter"
    if search not in ("painter", "random"):
        raise UsageError(f"--search {search} is not for art runs; an art run takes painter or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; an art run has none")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: an art run writes a PNG grid; give a file ending in .png")
    art, painter = load_art_run(args.run_dir)
    budget = args.max_evaluations or 500 * args.n

    def draw(k: int, rnd: int):
        canvases, records = art.generate_canvases(painter if search == "painter" else None, k, args.seed + 7_919 * rnd)
        return ((canvas_key(c), c, r, bool(r["creative"])) for c, r in zip(canvases, records))

    chosen, records, spent = collect_distinct(draw, args.n, budget, batch=max(64, 2 * args.n))
    if chosen:
        atomic_write_bytes(out, png_bytes(image_grid(np.stack(chosen))))
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    print(f"wrote {len(chosen)} distinct creative canvases to {out} (metrics in {out}.jsonl) with {search} "
          f"({spent} candidates judged)")
    return shortfall_exit(len(chosen), args.n, spent, "distinct creative canvases", "candidates", args.strict)
