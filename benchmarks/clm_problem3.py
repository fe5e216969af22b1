"""Problem 3 of the seed: complexity against efficiency. At a fixed wall-clock
budget per run (``max_seconds``), the CLM's held-out solve rate and QD-score
over model sizes (player width, G width) and time shares (player env steps
per round). (Its arm of the adaptive schedule went with the option in issue
24; docs/results.md keeps the result.)

    .venv/bin/python benchmarks/clm_problem3.py --budget 90 --seeds 5 --out runs/problem3

Every run is a normal ``clm run`` (run folders kept under ``--out``), run one
after the other, never side by side: the budget is wall time. Prints one line per run and a
final JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchstats import ci95, clm_run

#: Model sizes and time shares, each a change from the default `clm run` (seed 0).
FRONTIER = {
    "default": [],
    "player narrow (conv 8-16, 64 units)": ["player.conv_channels=[8,16]", "player.hidden=[64]"],
    "player wide (conv 32-64, 256 units)": ["player.conv_channels=[32,64]", "player.hidden=[256]"],
    "G and D narrow (16)": ["gan.g_width=16", "gan.d_width=16"],
    "G and D wide (64)": ["gan.g_width=64", "gan.d_width=64"],
    "player share low (3,200 steps a round)": ["player_steps=3200"],
    "player share high (12,800 steps a round)": ["player_steps=12800"],
}


def budget_run(out: Path, seed: int, budget: float, extra: list[str]) -> dict:
    s = clm_run(out, [f"seed={seed}", "rounds=1000", f"max_seconds={budget}", "report=false", "threads=1",
                      "stuck_rounds=0", *extra])
    return {"heldout": s["player_solve_rate"], "qd_score": s["qd_score"], "qd_coverage": s["qd_coverage"],
            "rounds": s["rounds"], "player_env_steps": s["player_env_steps"], "wall_seconds": s["wall_seconds"],
            "shares": {k[len("time_share_"):]: round(v, 3) for k, v in s.items() if k.startswith("time_share_")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=90.0, help="wall seconds per run")
    ap.add_argument("--frontier-seeds", type=int, default=1)
    ap.add_argument("--out", default="runs/problem3")
    args = ap.parse_args()
    out = Path(args.out)
    frontier: dict[str, list[dict]] = {name: [] for name in FRONTIER}
    for seed in range(args.frontier_seeds):
        for i, (name, extra) in enumerate(FRONTIER.items()):
            r = budget_run(out / f"frontier-{i}-s{seed}", seed, args.budget, extra)
            frontier[name].append(r)
            print(f"{name} seed {seed}: held-out {r['heldout']:.3f}, QD-score {r['qd_score']:.1f}, "
                  f"{r['rounds']} rounds, shares {r['shares']}", flush=True)
    figures: dict = {"budget_seconds": args.budget, "seeds": args.frontier_seeds}
    figures["frontier"] = {name: {**{k: ci95([r[k] for r in runs]) for k in ("heldout", "qd_score")}, "per_seed": runs}
                           for name, runs in frontier.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
