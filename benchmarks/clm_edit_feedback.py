"""Issue 25: does feeding edited levels back widen G's range?

Per seed, two CLM runs of the same size (reused when finished), differing
only in the edit coupling: ``off`` (today's CLM) and ``on``
(``edit_search=true``: each round, random edits of G's playable samples and
the archive; the creative ones join the archive, which feeds D's real
batches). Then --samples raw samples of each run's final G (z ~ N(0, I)) are
judged by the off run's judge (its D and corpus; novelty to the corpus) and
filed in the QD grid (pushes x wall density). Reported per seed and as
paired means with 95% intervals:

  new_cell_share   share of the on-G's samples that land (playable) in a
                   cell the off-G's samples never reach
  new_cell_floor   the same for a second draw of the off-G's own samples
                   (what sampling noise alone gives)
  cells            cells G's playable samples reach
  pushes_p90, pushes_max   of G's playable samples

    nice -n 5 .venv/bin/python benchmarks/clm_edit_feedback.py --seeds 5 --out runs/edit-feedback

Writes edit_feedback.json in --out and prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

SCALE = ["rounds=12", "player_steps=64", "player_demos=false", "eval_every=12", "eval_levels=10", "report=false",
         "stuck_rounds=0"]


def g_figures(run, judge, D, n: int, seed: int) -> dict:
    from clm.levels_clm.designer import decode_latents
    from clm.levels_clm.qd_grid import QDGrid

    z = np.random.default_rng(seed).standard_normal((n, run.G.z_dim)).astype(np.float32)
    levels = decode_latents(run.G, z, judge.n_boxes)
    j = judge.judge(D, levels)
    grid = QDGrid("wall_density", min_novelty=0)
    ok = np.asarray(j.playable, bool)
    cells = grid.cells(grid.descriptors(levels, j))[ok]
    pushes = np.asarray(j.pushes)[ok]
    return {"cells": {tuple(c) for c in cells.tolist()}, "cell_list": [tuple(c) for c in cells.tolist()],
            "playable": float(ok.mean()), "pushes_p90": float(np.percentile(pushes, 90)) if len(pushes) else 0.0,
            "pushes_max": float(pushes.max()) if len(pushes) else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="runs/edit-feedback")
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()

    import torch

    from clm.levels_clm.search import load_run

    torch.set_num_threads(1)
    root = Path(args.out)
    per_seed = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        for arm, extra in (("off", []), ("on", ["edit_search=true"])):
            clm_run(root / f"{arm}-{seed}", [f"seed={seed}", *SCALE, *extra])
        off, on = load_run(root / f"off-{seed}"), load_run(root / f"on-{seed}")
        off.judge.archive_tiles = None
        f_off = g_figures(off, off.judge, off.D, args.samples, seed + 7)
        f_on = g_figures(on, off.judge, off.D, args.samples, seed + 7)
        f_again = g_figures(off, off.judge, off.D, args.samples, seed + 1007)
        new = sum(c not in f_off["cells"] for c in f_on["cell_list"]) / args.samples
        floor = sum(c not in f_off["cells"] for c in f_again["cell_list"]) / args.samples
        row = {"seed": seed, "new_cell_share": new, "new_cell_floor": floor,
               **{f"{k}_{arm}": f[k] for arm, f in (("off", f_off), ("on", f_on))
                  for k in ("playable", "pushes_p90", "pushes_max")},
               "cells_off": len(f_off["cells"]), "cells_on": len(f_on["cells"])}
        per_seed.append(row)
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): {row}", flush=True)
    keys = [k for k in per_seed[0] if k != "seed"]
    summary = {k: ci95([r[k] for r in per_seed]) for k in keys}
    summary["new_cell_share-floor"] = ci95([r["new_cell_share"] - r["new_cell_floor"] for r in per_seed])
    for k in ("cells", "pushes_p90", "pushes_max", "playable"):
        summary[f"{k}_on-off"] = ci95([r[f"{k}_on"] - r[f"{k}_off"] for r in per_seed])
    result = {"seeds": args.seeds, "samples": args.samples, "summary": summary,
              "wall_seconds": time.perf_counter() - t0}
    root.mkdir(parents=True, exist_ok=True)
    (root / "edit_feedback.json").write_text(json.dumps({**result, "per_seed": per_seed}, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
