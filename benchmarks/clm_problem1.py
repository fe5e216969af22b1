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
(The frontier and novelty arms went with ``generated_filter`` in issue 24;
docs/results.md keeps their figures.)

    .venv/bin/python benchmarks/clm_problem1.py --seeds 5 --corpus-sizes 50,100,800 --rounds 15 --jobs 2

Every run is a normal ``clm run`` (its run folder is kept under ``--out``);
runs are independent processes, so ``--jobs`` runs them side by side: the
figures compared are solve rates at equal env steps and updates, not wall
times. Prints one line per corpus size and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchstats import ci95, clm_run

ARMS = {
    "real": ["generated_to_player=false"],
    "clm": [],
    "classic": ["pool_source=classic"],
}


def one_run(out: Path, arm: str, size: int, seed: int, rounds: int, extra: list[str]) -> dict:
    run = out / f"{arm}-n{size}-s{seed}"
    s = clm_run(run, [f"seed={seed}", f"corpus_size={size}", f"rounds={rounds}", f"eval_every={rounds}",
                      "report=false", "threads=1", *ARMS[arm], *extra])
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
    ap.add_argument("--arms", default="real,clm,classic", help="comma-separated subset of " + ", ".join(ARMS))
    ap.add_argument("--summarize", nargs="*", default=None, metavar="JSONL",
                    help="print the figures of finished runs' results files instead of running")
    ap.add_argument("--results", default="", help="append each finished run's figures here as it ends "
                    "(default: OUT/results.jsonl)")
    ap.add_argument("extra", nargs="*", help="key=value settings for every run")
    args = ap.parse_args()
    sizes = [int(v) for v in args.corpus_sizes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if any(a not in ARMS for a in arms):
        ap.error(f"--arms: unknown {[a for a in arms if a not in ARMS]}; valid: {', '.join(ARMS)}")
    if args.summarize is not None:
        results = [json.loads(line) for f in args.summarize for line in Path(f).read_text().splitlines() if line]
        summarize(results, sizes, arms, args)
        return
    jobs = [(arm, size, seed) for size in sizes for seed in range(args.seeds) for arm in arms]
    results_file = Path(args.results) if args.results else out / "results.jsonl"
    lock = threading.Lock()

    def run_and_record(job) -> dict:
        r = one_run(out, *job, args.rounds, args.extra)
        with lock, results_file.open("a") as f:
            f.write(json.dumps(r) + "\n")
        return r

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(run_and_record, jobs))
    summarize(results, sizes, arms, args)


def summarize(results: list[dict], sizes: list[int], arms: list[str], args) -> None:
    """Per corpus size: each arm's mean and interval, and each arm's paired
    difference from ``real`` (when both ran)."""
    figures: dict = {"rounds": args.rounds, "seeds": args.seeds,
                     "env_steps": results[0]["env_steps"] if results else None}
    for size in sizes:
        by = {arm: {r["seed"]: r["heldout"] for r in results if r["arm"] == arm and r["size"] == size}
              for arm in arms}
        row: dict = {}
        parts = []
        for arm, vals in by.items():
            if not vals:
                continue
            m, lo, hi = ci95(list(vals.values()))
            row[arm] = {"mean": m, "ci95": [lo, hi], "per_seed": [vals[k] for k in sorted(vals)]}
            text = f"{arm} {m:.3f} [{lo:.3f}, {hi:.3f}]"
            if arm != "real" and by.get("real"):
                seeds = sorted(set(vals) & set(by["real"]))
                m, lo, hi = ci95([vals[k] - by["real"][k] for k in seeds])
                row[f"{arm}_minus_real"] = {"mean": m, "ci95": [lo, hi], "seeds": len(seeds)}
                text += f" (vs real {m:+.3f} [{lo:+.3f}, {hi:+.3f}])"
            parts.append(text)
        for gen, oracle in (("clm", "classic"),):
            g, o = row.get(f"{gen}_minus_real"), row.get(f"{oracle}_minus_real")
            if g and o and o["mean"] > 0:
                row[f"{gen}_share_of_{oracle}_gain"] = g["mean"] / o["mean"]
                parts.append(f"{gen}/{oracle} gain {g['mean'] / o['mean']:.2f}")
        figures[f"corpus_{size}"] = row
        print(f"corpus {size}: " + " | ".join(parts), flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
