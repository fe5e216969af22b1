"""Benchmark: `make run`'s job (`clm run`) under settings that might make it faster, side by side.

Each arm is a `clm run` with the default config plus the arm's overrides;
the arms run one after the other, alternating (arm order rotated each
repeat, so a drift in the machine's load hits every arm alike), and the
figures are each arm's median wall time, its ratio to the first arm's
median, and the held-out solve rate and archive figures of every run (one
seed unless `--seeds` says more: speed and quality are paired by seed).

    .venv/bin/python benchmarks/make_run_speed.py --repeats 3 --arms default "player.amp=true" "threads=2"
    .venv/bin/python benchmarks/make_run_speed.py --repeats 2 --out runs/speed -- rounds=10

An arm is a space-separated list of key=value overrides ("default": none).
Settings after `--` go to every run. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIGURES = ("player_solve_rate", "creative_levels", "qd_score", "generated_playable_fraction")


def one_run(out: Path, seed: int, arm: str, settings: list[str]) -> dict:
    """One `clm run` in a fresh folder; its wall time (the process's, start to exit) and figures."""
    overrides = [] if arm == "default" else arm.split()
    cmd = [sys.executable, "-m", "clm", "run", "--out", str(out), "--json", "report=false", f"seed={seed}",
           *settings, *overrides]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, **{k: summary.get(k) for k in FIGURES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arms", nargs="+", default=["default", "player.amp=true"])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each arm per seed, alternated")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default="runs/make-run-speed")
    ap.add_argument("settings", nargs="*", help="key=value settings of every run (after --)")
    args = ap.parse_args()
    root = Path(args.out)
    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for r in range(args.repeats):
            order = args.arms[r % len(args.arms):] + args.arms[: r % len(args.arms)]
            for arm in order:
                folder = root / f"s{seed}-r{r}-{args.arms.index(arm)}"
                if folder.exists():
                    raise SystemExit(f"{folder} exists: give a fresh --out")
                res = one_run(folder, seed, arm, args.settings)
                runs[arm].append({"seed": seed, "repeat": r, **res})
                print(f"seed {seed} repeat {r} [{arm}]: {res['wall_seconds']:.1f} s, held-out "
                      f"{res['player_solve_rate']}, creative {res['creative_levels']}", flush=True)
    base = statistics.median(x["wall_seconds"] for x in runs[args.arms[0]])
    figures = {}
    for arm, rs in runs.items():
        med = statistics.median(x["wall_seconds"] for x in rs)
        figures[arm] = {"median_wall_seconds": med, "ratio_to_first_arm": med / base, "runs": rs}
    print(json.dumps({"settings": args.settings, "seeds": args.seeds, "repeats": args.repeats, "arms": figures}))


if __name__ == "__main__":
    main()
