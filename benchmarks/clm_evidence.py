"""Evidence for the seed's three problems, over several seeds (mean and 95% CI).

Per seed, two CLM runs of the same size:
  real-only : no generated levels in the player's pool, no archive feedback
              (the player trains on real levels only; G is a plain GAN);
  clm       : every coupling on.
(A third arm, the adaptive schedule, was removed with the option in issue 24;
its result stays in docs/results.md.)
Problem 1: held-out solve rate of the player, real-only vs clm (equal env
           steps and updates).
Problem 2: distinct creative levels per 1,000 G evaluations (playable, novelty >= K,
           D's realism >= the median real level's) and their mean optimal
           pushes, at an equal budget, for: random sampling of the plain G,
           CMA-ES on the plain G, random sampling of the CLM's G after
           feedback, CMA-ES on it, and the CLM's designer DQN. Each search is
           judged against the same corpus and the same D (the CLM run's).
Problem 3: time share per part (clm run), and wall-clock seconds until the
           player first reaches a held-out solve rate bar.

    .venv/bin/python benchmarks/clm_evidence.py --seeds 3 --out runs/evidence
Writes evidence.json (read by the report) and prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

SCALE = ["rounds=20", "eval_every=2", "eval_levels=100", "report=false"]
REAL_ONLY = ["generated_to_player=false", "archive_feedback=false", 
             "designer_search=false"]


def evidence_run(out: Path, seed: int, extra: list[str]) -> dict:
    return clm_run(out, [f"seed={seed}", *SCALE, *extra])


def solve_curve(run: Path) -> list[tuple[float, float]]:
    """(cumulative wall seconds, held-out solve rate) at each evaluated round."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "player_solve_rate" in row:
            out.append((row["time"], row["player_solve_rate"]))
    return out


def search_yields(plain: Path, clm: Path, budget: int, seed: int) -> dict[str, dict]:
    """Creative-level yield per 1,000 G evaluations for each search method."""
    from clm.levels_clm.qd import run_qd_search
    from clm.levels_clm.search import load_run

    judged_by = load_run(clm)  # one judge (corpus, archive-free novelty, the CLM's D) for every method
    judged_by.judge.archive_tiles = None
    base = load_run(plain)

    J, D = judged_by.judge, judged_by.D

    def run(search, G, search_seed):
        found: list = []  # (layout, pushes) of every creative level, repeats included

        def creative(levels, j):
            found.extend((levels[i].key(), int(j.pushes[i])) for i in np.flatnonzero(j.creative))
            return False

        p = run_qd_search(search, G, D, J, budget, search_seed, designer=judged_by.designer, on_judged=creative)
        # Yield counts distinct layouts: a search that keeps re-finding one level has found one level.
        first: dict = {}
        for key, pushes in found:
            first.setdefault(key, pushes)
        return {"creative_with_repeats": len(found), "evaluations": p.evaluations,
                "yield_per_1000": 1000 * len(first) / max(p.evaluations, 1),
                "difficulty_mean": float(np.mean(list(first.values()))) if first else None}

    out = {
        "random (plain G)": run("random", base.G, seed * 100 + 1),
        "cmaes (plain G)": run("cmaes", base.G, seed + 1),
        "random (G after feedback)": run("random", judged_by.G, seed * 100 + 2),
        "cmaes (G after feedback)": run("cmaes", judged_by.G, seed + 2),
    }
    if judged_by.designer is not None:
        out["designer DQN"] = run("designer", judged_by.G, seed + 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/evidence")
    ap.add_argument("--budget", type=int, default=1000, help="G evaluations per search method")
    ap.add_argument("--small-corpus", type=int, default=100,
                    help="also compare real-only vs clm with this many training levels (0: skip)")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    p1 = {"real-only": [], "clm": []}
    p2: dict[str, dict[str, list]] = {}
    shares: dict[str, list] = {}
    p3 = {"fixed": []}  # the adaptive schedule was removed (issue 24); its result stays in docs/results.md
    for seed in range(args.seeds):
        real_only = evidence_run(root / f"real-only-{seed}", seed, REAL_ONLY)
        clm = evidence_run(root / f"clm-{seed}", seed, [])
        p1["real-only"].append(real_only["player_solve_rate"])
        p1["clm"].append(clm["player_solve_rate"])
        if args.small_corpus:  # real data scarce: does generated data help more?
            small = [f"corpus_size={args.small_corpus}"]
            ro = evidence_run(root / f"real-only-small-{seed}", seed, small + REAL_ONLY)
            cs = evidence_run(root / f"clm-small-{seed}", seed, small)
            p1.setdefault(f"real-only, {args.small_corpus} levels", []).append(ro["player_solve_rate"])
            p1.setdefault(f"clm, {args.small_corpus} levels", []).append(cs["player_solve_rate"])
        for method, fig in search_yields(root / f"real-only-{seed}", root / f"clm-{seed}", args.budget, seed).items():
            for k, v in fig.items():
                p2.setdefault(method, {}).setdefault(k, []).append(v)
        for k, v in clm.items():
            if k.startswith("time_share_"):
                shares.setdefault(k[len("time_share_"):], []).append(v)
        curves = {"fixed": solve_curve(root / f"clm-{seed}")}
        bar = 0.8 * min(max(r for _, r in c) for c in curves.values())
        for mode, c in curves.items():
            p3[mode].append(next((t for t, r in c if r >= bar), None))
        print(f"seed {seed}: solve real-only {real_only['player_solve_rate']:.3f} clm {clm['player_solve_rate']:.3f}; "
              f"time to bar {bar:.2f}: fixed {p3['fixed'][-1]}", flush=True)

    def row(name, values, **extra):
        m, lo, hi = ci95(values)
        return {"method": name, "mean": m, "ci95": [lo, hi], "values": values, **extra}

    evidence = {
        "problem1": {"rows": [row(k, v) for k, v in p1.items()],
                     "note": "held-out real levels solved by the greedy player (the corpus's held-out split)"},
        "problem2": {"rows": [{"method": m, "yield_per_1000": ci95(f["yield_per_1000"])[0],
                               "ci95": list(ci95(f["yield_per_1000"])[1:]),
                               "difficulty_mean": ci95([d for d in f["difficulty_mean"] if d is not None])[0],
                               "creative_with_repeats": float(np.mean(f["creative_with_repeats"])),
                               "evaluations": int(np.mean(f["evaluations"]))} for m, f in p2.items()],
                     "note": f"{args.budget} G evaluations per method and seed; yield = distinct creative layouts "
                             "(playable, novelty >= K to the corpus, D's realism >= median real level) per 1,000"},
        "problem3": {"rows": [row(f"time share {k}", v) for k, v in shares.items()]
                     + [row(f"seconds to solve-rate bar ({k})", v) for k, v in p3.items()],
                     "note": "bar = 0.8 x the lower of the two runs' best held-out solve rate"},
    }
    (root / "evidence.json").write_text(json.dumps(evidence, indent=2))
    for seed in range(args.seeds):
        (root / f"clm-{seed}" / "evidence.json").write_text(json.dumps(evidence, indent=2))
    print(json.dumps({"problem1": {k: ci95(v) for k, v in p1.items()},
                      "problem2": {m: ci95(f["yield_per_1000"]) for m, f in p2.items()},
                      "problem3": {k: ci95(v) for k, v in p3.items()},
                      "time_share": {k: ci95(v)[0] for k, v in shares.items()}}))


if __name__ == "__main__":
    main()
