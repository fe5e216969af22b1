"""Benchmark: does a ``clm tune dqn`` study find CartPole settings at least as
good as rl-zoo3's tuned ones, at equal env steps? (issue 16)

1. ``clm tune dqn --env CartPole-v1 --trials N`` with every trial at
   ``--steps`` env steps, scored by the mean over ``--seeds-per-trial``
   tuning seeds (100, 101, ...).
2. The study's best settings and rl-zoo3's (``hyperparams/dqn.yml``,
   CartPole-v1: lr 2.3e-3, batch 64, buffer 1e5, learning_starts 1000, gamma
   0.99, target_update_interval 10, train_freq 256, gradient_steps 128,
   exploration_fraction 0.16, final epsilon 0.04, net_arch [256, 256]; our
   DQNConfig defaults are these but for the width) each trained again on
   fresh seeds (1..S, never used in the study) at the same env steps, one
   after the other; final greedy return over 20 episodes.

Mean, 95% t-interval and the paired difference; the last line is one JSON object.

    .venv/bin/python benchmarks/tune_dqn.py --trials 30 --steps 20000 --seeds 3 --out runs/tune-bench
    .venv/bin/python benchmarks/tune_dqn.py --trials 50 --steps 20000 --seeds 5 --seeds-per-trial 3 \
        --out runs/tune-bench-k3-50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchstats import ci95

ZOO = {"lr": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1_000, "gamma": 0.99,
       "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
       "epsilon_end": 0.04, "hidden": [256, 256]}


def train(out: Path, settings: dict, steps: int, seed: int) -> dict:
    if not (out / "summary.json").exists():
        args = [f"{k}={json.dumps(v)}" for k, v in settings.items()]
        subprocess.run([sys.executable, "-m", "clm", "dqn", "train", "--env", "CartPole-v1", "--out", str(out),
                        "--json", f"total_steps={steps}", f"seed={seed}", "eval_interval=0", "eval_episodes=20",
                        *args], check=True, capture_output=True, text=True)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seeds-per-trial", type=int, default=1, help="tuning seeds each trial averages")
    ap.add_argument("--out", default="runs/tune-bench")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    study = out / "study"
    subprocess.run([sys.executable, "-m", "clm", "tune", "dqn", "--env", "CartPole-v1", "--trials", str(args.trials),
                    "--seeds-per-trial", str(args.seeds_per_trial), "--out", str(study), "seed=100",
                    f"total_steps={args.steps}", f"eval_interval={args.steps // 4}", "eval_episodes=10"], check=True)
    tune_seconds = time.perf_counter() - t0
    best = json.loads((study / "best.json").read_text())
    rows = []
    for seed in range(1, args.seeds + 1):
        tuned = train(out / f"tuned-s{seed}", best["params"], args.steps, seed)
        zoo = train(out / f"zoo-s{seed}", ZOO, args.steps, seed)
        rows.append({"seed": seed, "tuned": tuned["eval_return_mean"], "zoo": zoo["eval_return_mean"]})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"trials": args.trials, "steps": args.steps, "seeds_per_trial": args.seeds_per_trial, "study_best": best["eval_return_mean"],
                      "best_params": best["params"], "tuned": ci95([r["tuned"] for r in rows]),
                      "zoo": ci95([r["zoo"] for r in rows]),
                      "difference": ci95([r["tuned"] - r["zoo"] for r in rows]), "per_seed": rows,
                      "tune_seconds": tune_seconds}))


if __name__ == "__main__":
    main()
