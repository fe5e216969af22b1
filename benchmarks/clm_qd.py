"""Problem 2 as quality diversity: does the agent steer G toward creative data,
against the quality-diversity state of the art?

Per seed, two short CLM runs of the same size (the runs are reused when present):
  clm   : every coupling on (the "fed-back G": the archive feeds D; the
          player steers G; the designer DQN searches G's latent space);
  plain : every coupling off and the player without demonstrations (G is a
          plain GAN; the player never touches it).
Every search then spends exactly --budget G evaluations on the fed-back G,
judged by the same judge (the clm run's D and corpus; novelty against the
corpus only), and each judged level is filed in the same QD grid
(clm.levels_clm.qd.QDGrid: optimal pushes x --second). Reported per method:
coverage and QD-score (mean, t-based 95% interval over seeds), and the
paired ratios designer / random and designer / CMA-ME. Reference rows:
random sampling of the plain G, and random sampling of the fed-back G with
--ceiling x the budget (how far more sampling alone gets). Also the
random-sample diversity of the fed-back G against the plain G (distinct
layouts per 1,000 samples, mean pairwise Hamming distance).

    nice -n 15 .venv/bin/python benchmarks/clm_qd.py --seeds 5 --out runs/qd

Writes qd.json in --out and prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

# stuck_rounds=0: the plain run's player (no demonstrations, and never touching G) may solve nothing for
# 10 rounds, which would otherwise stop the run.
SCALE = ["rounds=12", "player_steps=1600", "eval_every=12", "eval_levels=50", "report=false", "stuck_rounds=0"]
PLAIN = ["archive_feedback=false", "designer_search=false", 
         "generated_to_player=false", "player_demos=false"]
DESIGNERS = ("designer",)


def qd_run(out: Path, seed: int, extra: list[str]) -> None:
    """Train a CLM run at this benchmark's scale into ``out`` unless a finished one is there."""
    clm_run(out, [f"seed={seed}", *SCALE, *extra])


def sample_diversity(G, n_boxes: int, n: int, seed: int) -> dict[str, float]:
    """Distinct layouts per 1,000 random samples and their mean pairwise Hamming distance."""
    from clm.domains.levels.metrics import diversity
    from clm.levels_clm.designer import decode_latents

    z = np.random.default_rng(seed).standard_normal((n, G.z_dim)).astype(np.float32)
    levels = decode_latents(G, z, n_boxes)
    return {"distinct_per_1000": 1000 * len({lv.key() for lv in levels}) / n, "mean_hamming": diversity(levels)}


def judge_seed(clm_dir: Path, plain_dir: Path, seed: int, args) -> tuple[dict, dict]:
    """Every search on one seed's runs: {method: figures}, and the diversity figures."""
    import torch

    from clm.levels_clm.qd import run_qd_search
    from clm.levels_clm.search import load_run
    from clm.levels_clm.searches import search_names

    torch.set_num_threads(1)
    run, plain = load_run(clm_dir), load_run(plain_dir)
    run.judge.archive_tiles = None  # novelty against the corpus only: the archive came from this G
    G, D, J = run.G, run.D, run.judge
    out = {}

    def record(name, fn):
        t = time.perf_counter()
        p = fn()
        marks = {f"qd_at_{f}": next(q for e, _, q in p.curve if e >= f * p.budget) for f in (0.25, 0.5)}
        out[name] = {"coverage": p.grid.coverage, "qd_score": p.grid.qd_score, "filled": p.grid.filled,
                     "evaluations": p.evaluations, "seconds": time.perf_counter() - t, **marks,
                     "heatmap": [[None if np.isnan(v) else round(float(v), 3) for v in row]
                                 for row in p.grid.heatmap()]}

    names = [s for s in args.searches.split(",") if s] or search_names("latent")
    for name in names:
        record(name, lambda: run_qd_search(name, G, D, J, args.budget, seed, args.second, designer=run.designer))
    record("random, plain G", lambda: run_qd_search("random", plain.G, D, J, args.budget, seed, args.second))
    if args.ceiling:
        record(f"random, {args.ceiling}x budget",
               lambda: run_qd_search("random", G, D, J, args.budget * args.ceiling, seed, args.second))
    div = {"fed-back G": sample_diversity(G, J.n_boxes, args.diversity_samples, seed + 7),
           "plain G": sample_diversity(plain.G, J.n_boxes, args.diversity_samples, seed + 7)}
    return out, div


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="runs/qd", help="results (and the CLM runs unless --runs)")
    ap.add_argument("--runs", default=None, help="folder of the CLM runs (clm-S, plain-S): reused when finished")
    ap.add_argument("--budget", type=int, default=1000, help="G evaluations per search and seed")
    ap.add_argument("--second", default="wall_density", help="second grid axis: wall_density | box_goal_distance | realism")
    ap.add_argument("--searches", default="", help="comma-separated QD searches (default: the latent ones of clm.levels_clm.searches.SEARCHES)")
    ap.add_argument("--ceiling", type=int, default=16, help="also random sampling with this many budgets (0: skip)")
    ap.add_argument("--diversity-samples", type=int, default=1000)
    args = ap.parse_args()

    from clm.core.errors import UserError
    from clm.levels_clm.qd_grid import SECOND_AXES
    from clm.levels_clm.searches import SEARCHES

    if args.second not in SECOND_AXES:
        raise SystemExit(f"error: unknown --second '{args.second}': valid ones are {', '.join(SECOND_AXES)}")
    unknown = [s for s in args.searches.split(",") if s and s not in SEARCHES]
    if unknown:
        raise SystemExit(f"error: unknown search(es) {', '.join(unknown)}: valid ones are {', '.join(SEARCHES)}")
    root = Path(args.out)
    runs = Path(args.runs) if args.runs else root
    root.mkdir(parents=True, exist_ok=True)
    per_seed: list[dict] = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        qd_run(runs / f"clm-{seed}", seed, [])
        qd_run(runs / f"plain-{seed}", seed, PLAIN)
        try:
            figures, div = judge_seed(runs / f"clm-{seed}", runs / f"plain-{seed}", seed, args)
        except UserError as e:
            raise SystemExit(f"error: {e}")
        per_seed.append({"seed": seed, "methods": figures, "diversity": div})
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): " + ", ".join(
            f"{m} {f['qd_score']:.1f}" for m, f in figures.items()), flush=True)

    methods = list(per_seed[0]["methods"])
    rows = {m: {k: ci95([s["methods"][m][k] for s in per_seed])
                for k in ("qd_score", "coverage", "filled", "qd_at_0.25", "qd_at_0.5")} for m in methods}

    def ratio(a, b):
        if a not in methods or b not in methods:
            return None
        return ci95([s["methods"][a]["qd_score"] / s["methods"][b]["qd_score"] for s in per_seed])

    ratios = {f"{d}/{b}": ratio(d, b) for d in DESIGNERS if d in methods for b in ("random", "cma_me")}
    diversity = {g: {k: ci95([s["diversity"][g][k] for s in per_seed]) for k in ("distinct_per_1000", "mean_hamming")}
                 for g in ("fed-back G", "plain G")}
    targets = {}
    for d in DESIGNERS:
        if d in methods:
            r = ratios[f"{d}/random"]
            targets[d] = {"qd >= 2x random": r[0] >= 2.0,
                          "qd >= cma_me": rows[d]["qd_score"][0] >= rows["cma_me"]["qd_score"][0]
                          if "cma_me" in rows else None}
    targets["fed-back diversity >= plain"] = all(diversity["fed-back G"][k][0] >= diversity["plain G"][k][0]
                                                 for k in ("distinct_per_1000", "mean_hamming"))
    result = {"budget": args.budget, "seeds": args.seeds, "grid": {"descriptors": ["pushes", args.second]},
              "qd_score": {m: r["qd_score"] for m, r in rows.items()},
              "coverage": {m: r["coverage"] for m, r in rows.items()},
              "ratios": ratios, "diversity": diversity, "targets": targets,
              "wall_seconds": time.perf_counter() - t0}
    (root / "qd.json").write_text(json.dumps({**result, "rows": rows, "per_seed": per_seed}, indent=1))

    print(f"\nQD grid pushes x {args.second}, {args.budget} G evaluations per search, {args.seeds} seeds")
    print(f"{'method':32s} {'QD-score':>9s} {'95% interval':>17s} {'coverage':>9s} {'cells':>6s}")
    for m, r in rows.items():
        q, c, f = r["qd_score"], r["coverage"], r["filled"]
        print(f"{m:32s} {q[0]:9.1f} {q[1]:8.1f}..{q[2]:7.1f} {c[0]:9.3f} {f[0]:6.1f}")
    for k, v in ratios.items():
        if v:
            print(f"ratio {k}: {v[0]:.2f} ({v[1]:.2f}..{v[2]:.2f})")
    for g, d in diversity.items():
        print(f"{g}: distinct/1000 {d['distinct_per_1000'][0]:.1f}, mean Hamming {d['mean_hamming'][0]:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
