"""Benchmark: the solver checks of many levels on a pool of workers (issue 16).

``solve_levels(levels, n_jobs=1)`` (in this process) against ``n_jobs=J`` on
worker processes and on a local Ray instance of J CPUs, one after the other
on the same levels: Boxoban's hard levels (10x10, 4 boxes; the size G makes
at the boxoban preset), plus the same layouts with one box moved to a random
floor cell (mostly unsolvable levels, which the solver must prove so; G's
raw samples are often such). Each way runs ``--repeats`` times; the first
call of a pool pays for starting its workers (``cold``), the median of the
rest is ``warm``. The results (status, pushes, moves) must be identical.

    .venv/bin/python benchmarks/parallel_verify.py --data ../shared/data/boxoban --levels 1000 --jobs 2

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def workload(root: Path, n: int, seed: int = 0) -> list:
    from clm.domains.levels import read_levels

    files = sorted((root / "hard").glob("*.txt"))
    levels = []
    for f in files:
        levels.extend(read_levels(f))
        if len(levels) >= n // 2:
            break
    levels = levels[: n // 2]
    rng = np.random.default_rng(seed)
    moved = []
    for lv in levels:  # one box moved to a random free floor cell
        boxes = lv.boxes.copy()
        on = np.argwhere(boxes)
        boxes[tuple(on[rng.integers(len(on))])] = False
        free = [tuple(c) for c in np.argwhere(~lv.walls & ~lv.boxes & ~lv.goals) if tuple(c) != tuple(lv.player)]
        boxes[free[rng.integers(len(free))]] = True
        moved.append(dataclasses.replace(lv, boxes=boxes))
    return levels + moved


def timed(levels, jobs: int, repeats: int, time_limit: float) -> tuple[list[float], list]:
    from clm.domains.levels.solver import solve_levels

    times, results = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        results = solve_levels(levels, time_limit=time_limit, n_jobs=jobs)
        times.append(time.perf_counter() - t)
    return times, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/boxoban", help="the Boxoban folder (with hard/)")
    ap.add_argument("--levels", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    from clm.domains.levels.solver import warmup

    warmup()
    levels = workload(Path(args.data), args.levels)
    key = lambda rs: [(r.status, r.pushes, r.moves) for r in rs]  # noqa: E731
    serial_t, serial = timed(levels, 1, args.repeats, args.time_limit)
    proc_t, proc = timed(levels, args.jobs, args.repeats, args.time_limit)
    import ray

    ray.init(num_cpus=args.jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_t, on_ray = timed(levels, args.jobs, args.repeats, args.time_limit)
    ray.shutdown()
    warm = {name: statistics.median(t[1:]) for name, t in (("serial", serial_t), ("processes", proc_t), ("ray", ray_t))}
    statuses = {s: sum(r.status == s for r in serial) for s in ("solved", "unsolvable", "limit")}
    print(json.dumps({
        "levels": len(levels), "jobs": args.jobs, "statuses": statuses, "machine": platform.processor() or platform.machine(),
        "serial_seconds": warm["serial"], "processes_seconds": warm["processes"], "ray_seconds": warm["ray"],
        "processes_cold_seconds": proc_t[0], "ray_cold_seconds": ray_t[0],
        "speedup_processes": warm["serial"] / warm["processes"], "speedup_ray": warm["serial"] / warm["ray"],
        "identical_processes": key(proc) == key(serial), "identical_ray": key(on_ray) == key(serial),
        "all_times": {"serial": serial_t, "processes": proc_t, "ray": ray_t}}))


if __name__ == "__main__":
    main()
