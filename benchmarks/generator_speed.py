"""Classic generator speed and quality, against gym-sokoban's generator in the same run.

    .venv/bin/python benchmarks/generator_speed.py [--gym-python /tmp/gymsok/bin/python]

gym-sokoban needs numpy<2, so it lives in its own venv:
``python3 -m venv /tmp/gymsok && /tmp/gymsok/bin/pip install 'numpy<2' gym-sokoban``.
Its ``room_utils.generate_room`` runs there (10x10, 4 boxes, 1.7 * (H + W)
walk steps as its SokobanEnv does); its rooms come back as JSON and are
checked by our solver like ours. Prints medians and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from clm.core.rundir import dumps_line
from clm.domains.levels.generator import generate_level, generate_levels
from clm.domains.levels.level import Level
from clm.domains.levels.solver import solve_level, warmup

GYM_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from gym_sokoban.envs.room_utils import generate_room
n, seed, budget = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
np.random.seed(seed)
out = []
start = time.perf_counter()
for i in range(n):
    if out and time.perf_counter() - start > budget:
        break
    t0 = time.perf_counter()
    fails = 0
    while True:
        try:
            fixed, state, _ = generate_room(dim=(10, 10), num_steps=int(1.7 * 20), num_boxes=4)
            break
        except (RuntimeWarning, RuntimeError):
            fails += 1
    out.append({"seconds": time.perf_counter() - t0, "fails": fails,
                "fixed": fixed.astype(int).tolist(), "state": state.astype(int).tolist()})
print(json.dumps(out))
"""


def gym_level(fixed, state) -> Level:
    """gym-sokoban arrays (0 wall, 1 floor, 2 target; state: 3/4 boxes, 5 player) to a Level."""
    fixed, state = np.array(fixed), np.array(state)
    player = tuple(int(x) for x in np.argwhere(state == 5)[0])
    return Level(walls=fixed == 0, goals=fixed == 2, boxes=(state == 3) | (state == 4), player=player)


def summarise(prefix: str, secs, levels) -> dict:
    results = [solve_level(lv, time_limit=10) for lv in levels]
    pushes = [r.pushes for r in results if r.solved]
    on_goal = sum(bool((lv.boxes & lv.goals).any()) for lv in levels)
    figures = {
        f"{prefix}_levels": len(levels),
        f"{prefix}_median_ms": round(float(np.median(secs)) * 1000, 3),
        f"{prefix}_p90_ms": round(float(np.percentile(secs, 90)) * 1000, 3),
        f"{prefix}_max_ms": round(float(np.max(secs)) * 1000, 2),
        f"{prefix}_solvable": sum(r.solved for r in results),
        f"{prefix}_median_pushes": float(np.median(pushes)) if pushes else None,
        f"{prefix}_with_box_on_goal": on_goal,
        f"{prefix}_median_floor": float(np.median([(~lv.walls).sum() for lv in levels])),
    }
    print(f"{prefix:5s}: {len(levels)} levels, median {figures[prefix + '_median_ms']:.2f} ms/level, "
          f"p90 {figures[prefix + '_p90_ms']:.2f} ms, solvable {figures[prefix + '_solvable']}/{len(levels)}, "
          f"median pushes {figures[prefix + '_median_pushes']}, with a box on a goal {on_goal}")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=500, help="levels from our generator")
    ap.add_argument("--gym-n", type=int, default=20, help="levels from gym-sokoban (at most)")
    ap.add_argument("--gym-python", help="python of a venv with gym-sokoban (skipped when absent)")
    ap.add_argument("--gym-budget", type=float, default=300.0,
                    help="stop starting gym-sokoban levels after this many seconds (its tail is long)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=1,
                    help="run states the solver checks per room, the hardest kept (generate_level's option)")
    args = ap.parse_args()

    warmup()
    generate_levels(2, seed=12345)  # compile the generator's kernels outside the timing
    rng = np.random.default_rng(args.seed)
    secs, levels = [], []
    for _ in range(args.n):
        t0 = time.perf_counter()
        levels.append(generate_level(rng, (10, 10), 4, candidates=args.candidates))
        secs.append(time.perf_counter() - t0)
    figures = {"size": "10x10", "boxes": 4, "candidates": args.candidates}
    figures.update(summarise("ours", secs, levels))

    if args.gym_python:
        cmd = [args.gym_python, "-c", GYM_SCRIPT, str(args.gym_n), str(args.seed), str(args.gym_budget)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"gym-sokoban failed: {proc.stderr[-500:]}", file=sys.stderr)
        else:
            rooms = json.loads(proc.stdout.strip().splitlines()[-1])
            glevels = [gym_level(r["fixed"], r["state"]) for r in rooms]
            figures.update(summarise("gym", [r["seconds"] for r in rooms], glevels))
            figures["gym_failed_tries"] = sum(r["fails"] for r in rooms)
            figures["speedup_median"] = round(figures["gym_median_ms"] / figures["ours_median_ms"], 1)
    print(dumps_line(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
