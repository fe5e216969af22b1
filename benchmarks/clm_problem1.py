"""Problem 1 of the seed: does generated data train the agent? Held-out real
levels solved by the CLM's player, at equal env steps and updates, paired by
seed, for three pools:

* ``real``: the real corpus only (``generated_to_player=false``), uniform
  level sampling. The CLM samples its pool uniformly too, so "real levels
  with the CLM's prioritisation" is this same arm;
* ``clm``: real plus the CLM's verified generated and archived levels, each
  with the solver's demonstrations (the default ``clm run``);
* ``classic``: real plus as many fresh levels per round from the project's
  classic generator, which made the corpus (``pool_source=classic``): the
  oracle, the ceiling a generator can reach here.

    .venv/bin/python benchmarks/clm_problem1.py --seeds 5 --corpus-sizes 50,100,800 --rounds 15 --jobs 2

Every run is a normal ``clm run`` (its run folder is kept under ``--out``);
runs are independent processes, so ``--jobs`` runs them side by side: the
figures compared are solve rates at equal env steps and updates, not wall
times. Prints one line per corpus size and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARMS = {
    "real": ["generated_to_player=false"],
    "clm": [],
    "classic": ["pool_source=classic"],
}


def ci95(values: list[float]) -> tuple[float, float, float]:
    """Mean and t-based 95% interval."""
    n = len(values)
    m = statistics.mean(values)
    if n < 2:
        return m, m, m
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(n, 2.0)
    h = t * statistics.stdev(values) / math.sqrt(n)
    return m, m - h, m + h


def one_run(out: Path, arm: str, size: int, seed: int, rounds: int, extra: list[str]) -> dict:
    run = out / f"{arm}-n{size}-s{seed}"
    summary = run / "summary.json"
    if not summary.exists():  # finished runs are reused: the script can be stopped and started again
        cmd = [sys.executable, "-m", "clm", "run", "--out", str(run), f"seed={seed}", f"corpus_size={size}", f"rounds={rounds}",
               f"eval_every={rounds}", "report=false", "threads=1", *ARMS[arm], *extra]
        if run.exists():
            import shutil

            shutil.rmtree(run)
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    s = json.loads(summary.read_text())
    if s["status"] != "ok":
        raise RuntimeError(f"{run}: status {s['status']}: {s.get('message')}")
    return {"arm": arm, "size": size, "seed": seed, "heldout": s["player_solve_rate"],
            "env_steps": s["player_env_steps"], "wall_seconds": s["wall_seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--corpus-sizes", default="50,100,800")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="runs/problem1")
    ap.add_argument("--results", default="", help="append each finished run's figures here as it ends "
                    "(default: OUT/results.jsonl)")
    ap.add_argument("extra", nargs="*", help="key=value settings for every run")
    args = ap.parse_args()
    sizes = [int(v) for v in args.corpus_sizes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(arm, size, seed) for size in sizes for seed in range(args.seeds) for arm in ARMS]
    results_file = Path(args.results) if args.results else out / "results.jsonl"
    lock = threading.Lock()

    def run_and_record(job) -> dict:
        r = one_run(out, *job, args.rounds, args.extra)
        with lock, results_file.open("a") as f:
            f.write(json.dumps(r) + "\n")
        return r

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(run_and_record, jobs))
    figures: dict = {"rounds": args.rounds, "seeds": args.seeds,
                     "env_steps": results[0]["env_steps"] if results else None}
    for size in sizes:
        by = {arm: [r["heldout"] for r in sorted(results, key=lambda r: r["seed"])
                    if r["arm"] == arm and r["size"] == size] for arm in ARMS}
        row: dict = {}
        for arm, vals in by.items():
            m, lo, hi = ci95(vals)
            row[arm] = {"mean": m, "ci95": [lo, hi], "per_seed": vals}
        for arm in ("clm", "classic"):
            m, lo, hi = ci95([a - b for a, b in zip(by[arm], by["real"])])
            row[f"{arm}_minus_real"] = {"mean": m, "ci95": [lo, hi]}
        gain_oracle = row["classic_minus_real"]["mean"]
        row["clm_share_of_oracle_gain"] = (row["clm_minus_real"]["mean"] / gain_oracle) if gain_oracle > 0 else None
        figures[f"corpus_{size}"] = row
        print(f"corpus {size}: real {row['real']['mean']:.3f} | clm {row['clm']['mean']:.3f} "
              f"(diff {row['clm_minus_real']['mean']:+.3f} [{row['clm_minus_real']['ci95'][0]:+.3f}, "
              f"{row['clm_minus_real']['ci95'][1]:+.3f}]) | classic {row['classic']['mean']:.3f} "
              f"(diff {row['classic_minus_real']['mean']:+.3f}) | share of oracle gain "
              f"{row['clm_share_of_oracle_gain']}", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
