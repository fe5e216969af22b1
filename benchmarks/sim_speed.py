"""Sokoban simulator speed: clm's simulators against gym-sokoban, same run.

    .venv/bin/python benchmarks/sim_speed.py [--batch 1024] [--repeats 5]

Measures environment steps per second (uniformly random actions, levels
drawn from Boxoban unfiltered/test when present, else random rooms):

* clm SokobanVecEnv at --batch, one-hot obs, copy=False (zero-copy) and
  copy=True (fresh arrays each step, the safe default);
* clm TorchSokobanBatch on the CPU at --batch, and with --cuda on the GPU
  too (the GPU machine's check: against the numba batch on the CPU);
* clm SokobanEnv (one level, gymnasium API);
* gym-sokoban 0.0.6 (Sokoban-v0, its core env.step, default RGB observation
  and its 10x10 'tiny_rgb_array'), run by a throwaway venv's python given by
  --gym-sokoban-python (default /tmp/gymsok/bin/python; make it with
  ``python3 -m venv /tmp/gymsok && /tmp/gymsok/bin/pip install 'numpy<2' gym-sokoban``).
  gym-sokoban's reset generates a room (seconds), so only its steps are timed.

Prints each figure (median of --repeats) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clm.domains.levels import Level, boxoban_split, find_boxoban_dir, read_levels
from clm.domains.levels.env import SokobanEnv, SokobanVecEnv
from clm.domains.levels.sim import TorchSokobanBatch

GYM_SOKOBAN_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, gym, gym_sokoban
steps, repeats = int(sys.argv[1]), int(sys.argv[2])
env = gym.make("Sokoban-v0").unwrapped
env.max_steps = 10**9  # never truncate while timing
t = time.perf_counter(); env.reset(); reset_s = time.perf_counter() - t
rng = np.random.default_rng(0)
out = {"reset_s": reset_s}
for mode in ("rgb_array", "tiny_rgb_array"):
    rates = []
    for _ in range(repeats):
        actions = rng.integers(1, 5, steps)  # gym-sokoban: 1..4 are the pushes/moves
        t = time.perf_counter()
        for a in actions:
            env.step(int(a), observation_mode=mode)
        rates.append(steps / (time.perf_counter() - t))
    out[mode] = rates
print(json.dumps(out))
"""


def random_rooms(n: int, seed: int = 0) -> list[Level]:
    """Walled 10x10 rooms with 4 boxes and 4 goals (stand-in when Boxoban is absent)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        walls = rng.random((10, 10)) < 0.2
        walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
        free = np.argwhere(~walls)
        pick = free[rng.permutation(len(free))[:9]]
        boxes = np.zeros((10, 10), bool)
        goals = np.zeros((10, 10), bool)
        boxes[tuple(pick[:4].T)] = True
        goals[tuple(pick[4:8].T)] = True
        out.append(Level(walls, goals, boxes, tuple(int(v) for v in pick[8])))
    return out


def rate(fn, n_steps: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n_steps / (time.perf_counter() - t))
    return rates


def bench_vec(levels, batch: int, steps: int, repeats: int, copy: bool) -> list[float]:
    env = SokobanVecEnv(levels, batch, copy=copy, seed=0)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, (steps, batch))
    env.step(actions[0])  # compile / warm up

    def run():
        for a in actions:
            env.step(a)

    return rate(run, steps * batch, repeats)


def bench_torch(levels, batch: int, steps: int, repeats: int, device: str = "cpu") -> list[float]:
    sim = TorchSokobanBatch(levels, batch, device=device, seed=0)
    sim.reset()
    actions = torch.randint(0, 4, (steps, batch), generator=torch.Generator().manual_seed(0)).to(device)
    sim.step(actions[0])

    def run():
        for a in actions:
            sim.step(a)
        if device.startswith("cuda"):
            torch.cuda.synchronize()  # the steps are queued: time them done

    return rate(run, steps * batch, repeats)


def bench_single(levels, steps: int, repeats: int) -> list[float]:
    env = SokobanEnv(levels)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, steps)

    def run():
        for a in actions:
            _, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                env.reset()

    return rate(run, steps, repeats)


def bench_gym_sokoban(python: str, steps: int, repeats: int) -> dict:
    if not Path(python).exists():
        return {"error": f"{python} not found (create the venv as the docstring says)"}
    proc = subprocess.run(
        [python, "-c", GYM_SOKOBAN_SCRIPT, str(steps), str(repeats)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=300, help="batch steps per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--single-steps", type=int, default=20000)
    ap.add_argument("--gym-sokoban-python", default="/tmp/gymsok/bin/python")
    ap.add_argument("--gym-sokoban-steps", type=int, default=3000)
    ap.add_argument("--cuda", action="store_true", help="also the torch batch on CUDA (the GPU machine)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if find_boxoban_dir() is not None:
        levels, level_set = list(read_levels(boxoban_split("unfiltered/test"))), "boxoban unfiltered/test"
    else:
        levels, level_set = random_rooms(1000), "random 10x10 rooms"
    print(f"levels: {level_set} ({len(levels)}); batch {args.batch}; {args.repeats} repeats; median steps/s")
    med = statistics.median
    results: dict[str, float | str] = {"levels": level_set, "batch": args.batch, "repeats": args.repeats}

    figures = {
        "clm_vec_zero_copy": lambda: bench_vec(levels, args.batch, args.steps, args.repeats, copy=False),
        "clm_vec_copy": lambda: bench_vec(levels, args.batch, args.steps, args.repeats, copy=True),
        "clm_torch_cpu": lambda: bench_torch(levels, args.batch, max(20, args.steps // 5), args.repeats),
        "clm_single_env": lambda: bench_single(levels, args.single_steps, args.repeats),
    }
    if args.cuda:
        figures["clm_torch_cuda"] = lambda: bench_torch(levels, args.batch, args.steps, args.repeats, "cuda")
    for name, fn in figures.items():
        rates = fn()
        results[f"{name}_steps_per_s"] = med(rates)
        print(f"{name:24s} {med(rates):14,.0f}   (min {min(rates):,.0f}, max {max(rates):,.0f})", flush=True)

    gs = bench_gym_sokoban(args.gym_sokoban_python, args.gym_sokoban_steps, args.repeats)
    if "error" in gs:
        results["gym_sokoban_error"] = gs["error"]
        print(f"gym-sokoban: not measured: {gs['error']}")
    else:
        for mode in ("rgb_array", "tiny_rgb_array"):
            key = f"gym_sokoban_{mode}_steps_per_s"
            results[key] = med(gs[mode])
            print(f"{'gym_sokoban_' + mode:24s} {med(gs[mode]):14,.0f}   (min {min(gs[mode]):,.0f}, max {max(gs[mode]):,.0f})")
        results["gym_sokoban_reset_s"] = gs["reset_s"]
        results["speedup_vec_copy_vs_gym_sokoban_tiny"] = results["clm_vec_copy_steps_per_s"] / results[
            "gym_sokoban_tiny_rgb_array_steps_per_s"
        ]
        print(f"gym_sokoban reset (room generation): {gs['reset_s']:.1f} s")
    if args.cuda:
        results["speedup_torch_cuda_vs_vec_copy"] = (results["clm_torch_cuda_steps_per_s"]
                                                     / results["clm_vec_copy_steps_per_s"])
        results["cuda_device"] = torch.cuda.get_device_name()
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
