"""``clm generate`` for an art run: canvases painted by the run's painter (or G's plain samples)."""

from __future__ import annotations

import json
from pathlib import Path

from clm.art_clm.domain import load_art_run
from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.images import image_grid
from clm.domains.images.art_pictures import png_bytes


def generate(args) -> int:
    """``clm generate`` for an art run: canvases painted by the run's painter
    (or G's plain samples) as a PNG grid, one metrics line each in FILE.jsonl."""
    search = args.search or "painter"
    if search not in ("painter", "random"):
        raise UsageError(f"--search {search} is not for art runs; an art run takes painter or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; an art run has none")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: an art run writes a PNG grid; give a file ending in .png")
    art, painter = load_art_run(args.run_dir)
    canvases, records = art.generate_canvases(painter if search == "painter" else None, args.n, args.seed)
    atomic_write_bytes(out, png_bytes(image_grid(canvases)))
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    creative = sum(r["creative"] for r in records)
    print(f"wrote {len(records)} canvases to {out} ({creative} creative; metrics in {out}.jsonl) with {search}")
    return 0
