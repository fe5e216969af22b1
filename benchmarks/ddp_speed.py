"""Data-parallel speed: one process against ``torchrun --nproc_per_node 2`` (gloo, CPU).

    .venv/bin/python benchmarks/ddp_speed.py [--repeats 3] [--only gan_mlp,dqn_learner] [--out DIR]

Each workload is one clm training command, run as a plain process and under
torchrun with 2 processes at the same global batch, one after the other
(never side by side), alternating, ``--repeats`` times each. The figure is
the steady-state rate read from the run's metrics.jsonl (the rows' own
clocks, first logged row to last: no interpreter start, data loading or
final evaluation in it), its median over repeats, and the speed-up
(2 processes / 1 process). The last logged losses of both are printed too:
the 2-process run computes the same numbers (tests/test_distributed.py
holds them to tolerances), so the speed-up compares like with like.

Workloads:

- ``gan_mlp``: ``clm gan train`` as it ships (digits, MLP pair, batch 128);
- ``gan_dcgan``: the DCGAN pair at batch 512 (more arithmetic per collective);
- ``dqn_learner``: ``clm dqn train`` on CartPole with a learner-heavy setting
  (256x256 MLP, batch 256, one update per env step, ``ddp_data=replicated``:
  the same updates split in two);
- ``clm_run``: ``clm run`` (small settings, ``player.ddp_data=replicated``):
  the player's learner split, the rest of the CLM run alike on both ranks.

Prints one line per run and a final JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS: dict[str, dict] = {
    "gan_mlp": {"cmd": ["gan", "train"], "args": ["steps=400", "log_every=50", "image_every=100000",
                         "checkpoint_every=100000", "final_eval=false"],
                "counter": "step", "unit": "G steps/s", "loss": "loss_d"},
    "gan_dcgan": {"cmd": ["gan", "train"], "args": ["arch=dcgan", "batch_size=512", "steps=50", "log_every=10",
                           "image_every=100000", "checkpoint_every=100000", "final_eval=false"],
                  "counter": "step", "unit": "G steps/s", "loss": "loss_d"},
    "dqn_learner": {"cmd": ["dqn", "train"], "args": ["total_steps=5000", "learning_starts=1000", "train_freq=64",
                             "gradient_steps=64", "batch_size=256", "hidden=[256,256]", "eval_interval=0",
                             "eval_episodes=2", "log_interval=1000", "checkpoint_interval=0",
                             "ddp_data=replicated"],
                    "counter": "gradient_steps", "unit": "updates/s", "loss": "loss"},
    "clm_run": {"cmd": ["run"], "args": ["rounds=4", "corpus_size=60", "heldout_size=20", "player_steps=640", "gan_steps=4",
                         "designer_steps=16", "samples_per_round=16", "eval_every=100", "eval_levels=10",
                         "player.learning_starts=64", "player.pretrain_steps=0", "player.train_freq=8",
                         "gan.g_width=8", "gan.d_width=8", "report=false", "player.ddp_data=replicated"],
                "counter": "step", "unit": "rounds/s", "loss": "player_loss"},
}


def steady_rate(metrics: Path, counter: str) -> tuple[float, float | None]:
    """(counter units per second between the first and the last logged row
    that carry the counter, the last row's value of it), from metrics.jsonl."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if isinstance(r.get(counter), (int, float)) and r.get(counter)]
    if counter == "step":  # the rows of one kind: a CLM run logs round 0 first
        rows = [r for r in rows if r["step"] > 0]
    first, last = rows[0], rows[-1]
    return (last[counter] - first[counter]) / max(last["time"] - first["time"], 1e-9), last


def run_once(name: str, world: int, root: Path) -> dict:
    spec = WORKLOADS[name]
    out = root / f"{name}-{world}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prefix = ([sys.executable, "-m", "clm"] if world == 1 else
              [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world), "-m", "clm"])
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(prefix + spec["cmd"] + ["--out", str(out), "--json"] + spec["args"], env=env,
                          capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} with {world} process(es) failed:\n{proc.stderr[-3000:]}")
    rate, last = steady_rate(out / "metrics.jsonl", spec["counter"])
    loss_rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r[spec["loss"]] for r in loss_rows if r.get(spec["loss"]) is not None]
    return {"rate": rate, "wall_seconds": wall, "load_before": load, "last_loss": losses[-1] if losses else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma list of workloads")
    ap.add_argument("--out", help="folder for the runs (default: a temporary one, removed)")
    args = ap.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ddp-speed-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    try:
        for name in args.only.split(","):
            spec = WORKLOADS[name]
            runs: dict[int, list] = {1: [], 2: []}
            for rep in range(args.repeats):
                for world in ((1, 2) if rep % 2 == 0 else (2, 1)):  # alternate, so drifting load hits both
                    r = run_once(name, world, root)
                    runs[world].append(r)
                    print(f"{name:12s} {world} proc  {r['rate']:9.2f} {spec['unit']:10s} wall {r['wall_seconds']:6.1f} s "
                          f"load {r['load_before']:.1f}  last {spec['loss']} {r['last_loss']}", flush=True)
            med = {w: statistics.median(x["rate"] for x in runs[w]) for w in runs}
            results[name] = {"unit": spec["unit"], "median_1": med[1], "median_2": med[2],
                             "speedup": med[2] / med[1], "rates_1": [x["rate"] for x in runs[1]],
                             "rates_2": [x["rate"] for x in runs[2]],
                             "last_loss_1": runs[1][-1]["last_loss"], "last_loss_2": runs[2][-1]["last_loss"],
                             "load_mean": statistics.mean(x["load_before"] for w in runs for x in runs[w])}
            print(f"{name:12s} median {med[1]:.2f} -> {med[2]:.2f} {spec['unit']}: speed-up {med[2] / med[1]:.2f}x",
                  flush=True)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"benchmark": "ddp_speed", "cpus": os.cpu_count(), "repeats": args.repeats,
                      "workloads": results}))


if __name__ == "__main__":
    main()
