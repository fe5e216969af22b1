"""Benchmark: each robustness option's effect on clean and perturbed scores (issue 17).

Arms (each a ``clm run`` of the levels CLM with ``robustness_eval=true``,
the same seeds, the same budget):

* ``baseline``: the defaults;
  (the arms obs_noise, pool_symmetries, pool_wall_moves and instance_noise went with those options in issue 24;
  docs/results.md keeps their figures);
* ``d_adversarial``: ``d_adversarial_flips=2`` (D learns that real levels with 2 adversarial flips are real).

Figures at the end of each run, on the first ``eval_levels`` held-out levels:
the player's solve rate clean and under observation noise (std
``robustness_noise``), a moved wall, mirroring and a quarter turn (and the
mean of the four, "perturbed"); D's mean realism on those real levels clean
and after 3 adversarial wall/floor flips. Each arm against the baseline,
paired by seed: mean difference and 95% t-interval. Runs whose folders are
finished are reused, so the script can be stopped and started again.

    .venv/bin/python benchmarks/robustness.py --seeds 0 1 2 --jobs 2 --out runs/robustness rounds=15

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchstats import ci95, clm_run

ARMS = {
    "baseline": [],
    "d_adversarial": ["d_adversarial_flips=2"],
}
PLAYER = ("clean", "noise", "wall_moved", "mirrored", "rotated", "perturbed")
D_KEYS = ("d_realism_clean", "d_realism_flip3", "d_realism_drop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (a quality benchmark: no timings compared)")
    ap.add_argument("--out", default="runs/robustness")
    ap.add_argument("settings", nargs="*", metavar="key=value", help="settings of every run, e.g. rounds=15")
    args = ap.parse_args()
    out = Path(args.out)
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]

    def one(job):
        arm, seed = job
        summary = clm_run(out / f"{arm}-s{seed}", ["--json", "report=false", "robustness_eval=true", f"seed={seed}",
                                                   *args.settings, *ARMS[arm]])
        print(json.dumps({"arm": arm, "seed": seed, **{k: summary.get(f"player_solve_rate_{k}") for k in PLAYER},
                          **{k: summary.get(k) for k in D_KEYS}}), flush=True)
        return job, summary

    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(one, jobs))
    table = {}
    for arm in args.arms:
        row = {}
        for k in PLAYER:
            key = f"player_solve_rate_{k}"
            row[k] = ci95([results[(arm, s)][key] for s in args.seeds])
            if arm != "baseline" and "baseline" in args.arms:
                row[f"{k}_vs_baseline"] = ci95([results[(arm, s)][key] - results[("baseline", s)][key]
                                                for s in args.seeds])
        for k in D_KEYS:
            row[k] = ci95([results[(arm, s)][k] for s in args.seeds])
            if arm != "baseline" and "baseline" in args.arms:
                row[f"{k}_vs_baseline"] = ci95([results[(arm, s)][k] - results[("baseline", s)][k] for s in args.seeds])
        table[arm] = row
        print(f"{arm:16s} clean {row['clean'][0]:.3f}  perturbed {row['perturbed'][0]:.3f}  "
              f"D clean {row['d_realism_clean'][0]:.3f}  D after 3 flips {row['d_realism_flip3'][0]:.3f}", flush=True)
    print(json.dumps({"seeds": args.seeds, "settings": args.settings, "arms": table}))


if __name__ == "__main__":
    main()
