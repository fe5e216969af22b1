"""Exact solver on Boxoban: unfiltered/test, medium/valid, hard (1000 levels
each), plus an optional comparison with Fast Downward on a sample.

    .venv/bin/python benchmarks/solver_boxoban.py [--fd-python /tmp/fd/bin/python --fd-sample 20]

Fast Downward is a benchmark-only extra, installed apart, e.g.
``python3 -m venv /tmp/fd && /tmp/fd/bin/pip install up-fast-downward``.
Sokoban is encoded in PDDL with action costs (push = 1, walk = 0), solved
with ``astar(lmcut())``, so its plan cost is the optimal push count too.
Prints one line per split and a final JSON line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clm.core.rundir import dumps_line
from clm.domains.levels.data import find_boxoban_dir
from clm.domains.levels.io import read_levels
from clm.domains.levels.solver import solve_level, warmup

SPLITS = ("unfiltered/test", "medium/valid", "hard")

DOMAIN = """(define (domain sokoban-push)
  (:requirements :strips :action-costs)
  (:predicates (robot ?l) (box ?l) (clear ?l) (adj ?a ?b ?d))
  (:functions (total-cost) - number)
  (:action move
    :parameters (?from ?to ?d)
    :precondition (and (robot ?from) (clear ?to) (adj ?from ?to ?d))
    :effect (and (not (robot ?from)) (robot ?to)))
  (:action push
    :parameters (?r ?b ?f ?d)
    :precondition (and (robot ?r) (box ?b) (clear ?f) (adj ?r ?b ?d) (adj ?b ?f ?d))
    :effect (and (not (robot ?r)) (robot ?b) (not (box ?b)) (clear ?b) (box ?f) (not (clear ?f))
                 (increase (total-cost) 1))))
"""


def problem_pddl(level) -> str:
    h, w = level.shape
    cells = [(r, c) for r in range(h) for c in range(w) if not level.walls[r, c]]
    name = lambda rc: f"c{rc[0]}_{rc[1]}"  # noqa: E731
    cellset = set(cells)
    facts = [f"(robot {name(level.player)})", "(= (total-cost) 0)"]
    for r, c in cells:
        facts.append(f"(box {name((r, c))})" if level.boxes[r, c] else f"(clear {name((r, c))})")
        for d, (dr, dc) in zip(("up", "down", "left", "right"), ((-1, 0), (1, 0), (0, -1), (0, 1))):
            if (r + dr, c + dc) in cellset:
                facts.append(f"(adj {name((r, c))} {name((r + dr, c + dc))} {d})")
    goals = [f"(box {name((r, c))})" for r, c in cells if level.goals[r, c]]
    return (f"(define (problem p) (:domain sokoban-push)\n (:objects {' '.join(name(x) for x in cells)} up down left right)\n"
            f" (:init {' '.join(facts)})\n (:goal (and {' '.join(goals)}))\n (:metric minimize (total-cost)))\n")


def run_fd(fd_python: str, level, timeout: float) -> dict:
    """Solve one level with Fast Downward; returns status, pushes, seconds."""
    script = subprocess.run([fd_python, "-c", "import up_fast_downward, os; print(os.path.join("
                             "os.path.dirname(up_fast_downward.__file__), 'downward', 'fast-downward.py'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "domain.pddl").write_text(DOMAIN)
        (tmp / "problem.pddl").write_text(problem_pddl(level))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([fd_python, script, "--plan-file", str(tmp / "plan"), str(tmp / "domain.pddl"),
                                   str(tmp / "problem.pddl"), "--search", "astar(lmcut())"],
                                  capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"status": "limit", "pushes": None, "seconds": timeout}
        seconds = time.perf_counter() - t0
        plan = tmp / "plan"
        if plan.exists():
            pushes = sum(1 for line in plan.read_text().splitlines() if line.startswith("(push"))
            return {"status": "solved", "pushes": pushes, "seconds": seconds}
        unsolvable = "Search stopped without finding a solution" in proc.stdout or proc.returncode == 12
        return {"status": "unsolvable" if unsolvable else f"error rc={proc.returncode}", "pushes": None,
                "seconds": seconds, "tail": (proc.stdout + proc.stderr)[-300:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="Boxoban folder (default: CLM_BOXOBAN_DIR or ../shared/data/boxoban)")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--per-split", type=int, default=1000, help="levels per split (first file)")
    ap.add_argument("--fd-python", help="python of a venv with up-fast-downward (skip FD when absent)")
    ap.add_argument("--fd-sample", type=int, default=20, help="hard levels compared with Fast Downward")
    ap.add_argument("--fd-timeout", type=float, default=60.0)
    args = ap.parse_args()

    root = find_boxoban_dir(args.root)
    if root is None:
        print("Boxoban corpus not found: set CLM_BOXOBAN_DIR", file=sys.stderr)
        return 1
    warmup()
    figures: dict = {"time_limit": args.time_limit}
    hard_levels, hard_results = [], []
    for split in SPLITS:
        files = sorted((root / split).glob("*.txt"))
        levels = read_levels(files[0])[: args.per_split]
        results = [solve_level(lv, time_limit=args.time_limit) for lv in levels]
        secs = np.array([r.seconds for r in results]) * 1000
        solved = sum(r.solved for r in results)
        pushes = [r.pushes for r in results if r.solved]
        key = split.replace("/", "_")
        figures.update({
            f"{key}_levels": len(levels), f"{key}_solved": solved,
            f"{key}_unsolvable": sum(r.status == "unsolvable" for r in results),
            f"{key}_limit": sum(r.status == "limit" for r in results),
            f"{key}_median_ms": round(float(np.median(secs)), 3),
            f"{key}_p90_ms": round(float(np.percentile(secs, 90)), 3),
            f"{key}_max_ms": round(float(secs.max()), 2),
            f"{key}_median_pushes": float(np.median(pushes)) if pushes else None,
            f"{key}_median_expansions": float(np.median([r.expansions for r in results])),
        })
        print(f"{split:16s} {solved}/{len(levels)} solved  median {np.median(secs):.2f} ms  "
              f"p90 {np.percentile(secs, 90):.2f} ms  max {secs.max():.1f} ms  median pushes {np.median(pushes):g}")
        if split == "hard":
            hard_levels, hard_results = levels, results

    if args.fd_python:
        rng = np.random.default_rng(0)
        idx = sorted(rng.choice(len(hard_levels), size=min(args.fd_sample, len(hard_levels)), replace=False))
        agree = same_pushes = fd_solved = 0
        fd_secs, ours_secs = [], []
        for i in idx:
            fd = run_fd(args.fd_python, hard_levels[i], args.fd_timeout)
            ours = hard_results[i]
            fd_solved += fd["status"] == "solved"
            agree += (fd["status"] == "solved") == ours.solved and fd["status"] in ("solved", "unsolvable")
            same_pushes += fd["status"] == "solved" and fd["pushes"] == ours.pushes
            fd_secs.append(fd["seconds"])
            ours_secs.append(ours.seconds)
            if fd["status"] != "solved" or fd["pushes"] != ours.pushes:
                print(f"  hard #{i}: FD {fd}  ours {ours.status} {ours.pushes}")
        figures.update({
            "fd_sample": len(idx), "fd_solved": fd_solved, "fd_agree_solvable": agree,
            "fd_same_optimal_pushes": same_pushes,
            "fd_median_s": round(float(np.median(fd_secs)), 3), "fd_max_s": round(float(np.max(fd_secs)), 3),
            "ours_on_fd_sample_median_ms": round(float(np.median(ours_secs)) * 1000, 3),
        })
        print(f"Fast Downward astar(lmcut) on {len(idx)} hard levels: solved {fd_solved}, agree {agree}, "
              f"same optimal pushes {same_pushes}, median {np.median(fd_secs):.2f} s (incl. translation), "
              f"ours median {np.median(ours_secs) * 1000:.2f} ms")
    print(dumps_line(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
