"""The CLM's art domain against its baselines (issue 14's evidence).

For each seed, three ``clm run --domain art`` runs, one after the other, at
the same budget (rounds, painter env steps, GAN updates):

- **clm**: the default art CLM (the painter pastes G's fragments or strokes);
- **strokes**: the same with ``fragments=false`` (the painter never sees G's
  fragments: what G's data does for the agent, at equal steps);
- **plain**: the couplings off (``archive_feedback=false
  unfinished_fake_fraction=0 kept_weight=0``): G and
  D never see the painter's canvases, so G's samples from a blank canvas are
  the plain GAN's.

Then, judged with each clm run's own D, classifier and training split:

1. FD-clf ratio (to the real floor: real train vs held-out, at the same
   sample size) and coverage of: the clm painter's canvases, the strokes
   painter's, the plain GAN's samples, and the clm G's samples.
2. Creative yield (realistic: D at least the median real digit's realism,
   on the real manifold, recognisable, not memorised) per 1,000 G
   evaluations, distinct canvases only: the painter (every proposal it is
   shown counts), random G samples from a blank canvas, and CMA-ES (``cma``)
   on z maximising the judge's score.

Mean and 95% t-interval over seeds, paired differences; one JSON line last.

    .venv/bin/python benchmarks/clm_art.py --seeds 3 --out runs/art
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

ARMS = {"clm": [], "strokes": ["fragments=false"],
        "plain": ["archive_feedback=false", "unfinished_fake_fraction=0", "kept_weight=0"]}


def distinct_creative(canvases: np.ndarray, creative: np.ndarray, eps: float = 1e-3) -> int:
    """Creative canvases that differ from every other one counted (by more than ``eps`` in L2)."""
    kept: list[np.ndarray] = []
    for c in canvases[creative]:
        flat = c.reshape(-1)
        if all(np.linalg.norm(flat - k) > eps for k in kept):
            kept.append(flat)
    return len(kept)


def painter_yield(art, painter, budget: int, seed: int) -> tuple[float, int]:
    """Distinct creative canvases per 1,000 G evaluations of the greedy painter, episodes of 16 canvases."""
    canvases, spent, k = [], 0, 0
    per_episode = 16 * art.cfg.n_proposals * (art.cfg.episode_steps + 1)
    while spent + per_episode <= budget:
        finals, _ = art.paint(painter.greedy_actions, 16, seed=seed * 1_000 + k)
        canvases.append(finals)
        spent, k = spent + per_episode, k + 1
    x = np.concatenate(canvases)
    return 1_000 * distinct_creative(x, art.judge(x)["creative"]) / spent, spent


def random_yield(art, budget: int, seed: int) -> float:
    s = art.cfg.canvas_size
    x = art.propose(np.full((budget, 1, s, s), -1.0, np.float32), np.random.default_rng(seed))[:, 0]
    return 1_000 * distinct_creative(x, art.judge(x)["creative"]) / budget


def cmaes_yield(art, budget: int, seed: int, popsize: int = 16, restart_every: int = 20) -> float:
    """CMA-ES over z of G(z, blank canvas), maximising the judge's score, restarted every ``restart_every`` generations."""
    import cma
    import torch

    s, zd = art.cfg.canvas_size, art.cfg.gan.z_dim
    blank = torch.full((popsize, s * s), -1.0)
    rng = np.random.default_rng(seed)
    found, spent = [], 0
    while spent < budget:
        es = cma.CMAEvolutionStrategy(rng.standard_normal(zd), 1.0,
                                      {"popsize": popsize, "seed": int(rng.integers(1, 2**31)), "verbose": -9})
        for _ in range(restart_every):
            if spent >= budget:
                break
            z = np.asarray(es.ask(), np.float32)[: budget - spent]
            with torch.no_grad():
                x = art.gan.sampler(torch.from_numpy(z), blank[: len(z)]).numpy()
            j = art.judge(x)
            spent += len(z)
            found.append((x, j["creative"]))
            if len(z) == popsize:
                es.tell(list(z.astype(np.float64)), list(-j["score"]))
    x = np.concatenate([f[0] for f in found])
    return 1_000 * distinct_creative(x, np.concatenate([f[1] for f in found])) / spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", default="runs/art")
    ap.add_argument("--budget", type=int, default=1_000, help="G evaluations per creative-yield search")
    ap.add_argument("--n", type=int, default=128, help="canvases for FD-clf and coverage (the floor's sample size)")
    ap.add_argument("overrides", nargs="*", help="ArtConfig key=value for every run (e.g. rounds=20)")
    args = ap.parse_args()
    from clm.core.runtime import set_threads
    from clm.art_clm.domain import load_art_run

    set_threads(1)
    rows: list[dict] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        runs, seconds = {}, {}
        for arm, extra in ARMS.items():
            t = time.perf_counter()
            clm_run(Path(args.out) / f"{arm}-s{seed}", ["--domain", "art", f"seed={seed}",
                                                        f"eval_canvases={args.n}", *extra, *args.overrides])
            seconds[arm] = time.perf_counter() - t
            runs[arm] = load_art_run(Path(args.out) / f"{arm}-s{seed}")
        art, painter = runs["clm"]
        row: dict = {"seed": seed, "run_seconds": seconds}
        figures = {
            "clm_painter": art.canvas_figures(art.paint(painter.greedy_actions, args.n, seed=seed + 77)[0]),
            "strokes_painter": runs["strokes"][0].canvas_figures(
                runs["strokes"][0].paint(runs["strokes"][1].greedy_actions, args.n, seed=seed + 77)[0]),
            "plain_gan": runs["plain"][0].canvas_figures(runs["plain"][0].generate_canvases(None, args.n, seed + 78)[0]),
            "clm_gan": art.canvas_figures(art.generate_canvases(None, args.n, seed + 78)[0]),
        }
        for who, f in figures.items():
            row[f"{who}_fd_clf_ratio"], row[f"{who}_coverage"] = f["canvas_fd_clf_ratio"], f["canvas_coverage"]
            row[f"{who}_creative_fraction"] = f["canvas_creative_fraction"]
            row[f"{who}_realism"] = f["canvas_realism"]
        row["yield_painter"], row["painter_evaluations"] = painter_yield(art, painter, args.budget, seed)
        row["yield_random"] = random_yield(art, args.budget, seed + 5)
        row["yield_cmaes"] = cmaes_yield(art, args.budget, seed + 6)
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    keys = [k for k in rows[0] if k not in ("seed", "run_seconds", "painter_evaluations")]
    summary: dict = {"seeds": [r["seed"] for r in rows], "overrides": args.overrides, "n": args.n,
                     "budget": args.budget}
    for k in keys:
        m, lo, hi = ci95([r[k] for r in rows])
        summary[k] = {"mean": m, "ci95": [lo, hi], "per_seed": [r[k] for r in rows]}
    for a, b in (("clm_painter_fd_clf_ratio", "plain_gan_fd_clf_ratio"), ("clm_painter_fd_clf_ratio", "strokes_painter_fd_clf_ratio"),
                 ("yield_painter", "yield_random"), ("yield_painter", "yield_cmaes"),
                 ("clm_painter_creative_fraction", "strokes_painter_creative_fraction")):
        m, lo, hi = ci95([r[a] - r[b] for r in rows])
        summary[f"{a} - {b}"] = {"mean": m, "ci95": [lo, hi]}
    ratios = [r["clm_painter_fd_clf_ratio"] / r["plain_gan_fd_clf_ratio"] for r in rows]
    m, lo, hi = ci95(ratios)
    summary["painter_fd_over_plain_gan_fd"] = {"mean": m, "ci95": [lo, hi], "per_seed": ratios}
    summary["run_seconds"] = [r["run_seconds"] for r in rows]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
