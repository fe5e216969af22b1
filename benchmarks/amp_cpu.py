"""Benchmark: bfloat16 autocast (``amp=true``) against float32 on the CPU (issue 16).

Three measurements, each float32 then bfloat16 on the same seed, one after
the other (never side by side), each run in its own subprocess with one
torch thread:

1. ``clm gan train`` on the digits (the default GAN) for ``--gan-steps``:
   training steps per second and the FD-clf ratio of the final samples.
2. ``clm dqn train`` on CartPole-v1 for ``--dqn-steps``: env steps per
   second and the final greedy return over 20 episodes. float32 here is the
   default path (the hand-written NumPy passes for plain MLPs on a CPU);
   amp goes through torch.
3. The CLM player's conv Q-network (the small preset's 7x7 levels, and the
   boxoban preset's 10x10 with its wider net): forward + backward passes
   per second on a batch of 64, float32 against bfloat16 autocast.

Medians over seeds, ratios bf16/fp32 per seed; the last line is one JSON object.

    .venv/bin/python benchmarks/amp_cpu.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchstats import ci95


def run(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "clm", *cmd, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def q_network_speed(amp: bool, size: int, channels: tuple[int, ...], hidden: tuple[int, ...], seconds: float) -> float:
    import torch

    from clm.agents.networks import QNetwork

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = QNetwork(obs_shape=(size, size, 7), n_actions=4, kind="conv", hidden=hidden, conv_channels=channels,
                   dueling=True, channels_last=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.rand(64, size, size, 7)
    target = torch.rand(64, 4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            q = net(x).float()
        loss = torch.nn.functional.smooth_l1_loss(q, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--gan-steps", type=int, default=1500)
    ap.add_argument("--dqn-steps", type=int, default=30_000)
    ap.add_argument("--out", default="runs/amp-cpu")
    ap.add_argument("--q-seconds", type=float, default=10.0)
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        row: dict = {"seed": seed}
        for amp in (False, True):
            tag = "bf16" if amp else "fp32"
            g = run(["gan", "train", "--out", str(out / f"gan-{tag}-s{seed}"), f"steps={args.gan_steps}",
                     f"seed={seed}", "threads=1", f"amp={str(amp).lower()}"])
            row[f"gan_{tag}_steps_per_s"] = args.gan_steps / g["train_seconds"]
            row[f"gan_{tag}_fd_clf_ratio"] = g["fd_clf_ratio"]
            d = run(["dqn", "train", "--env", "CartPole-v1", "--out", str(out / f"dqn-{tag}-s{seed}"),
                     f"total_steps={args.dqn_steps}", f"seed={seed}", "eval_interval=0", "eval_episodes=20",
                     f"amp={str(amp).lower()}"])
            row[f"dqn_{tag}_steps_per_s"] = d["env_steps_per_second"]
            row[f"dqn_{tag}_return"] = d["eval_return_mean"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    q = {}
    for name, size, channels, hidden in (("small", 7, (16, 32), (128,)), ("boxoban", 10, (32, 64), (256,))):
        fp32 = q_network_speed(False, size, channels, hidden, args.q_seconds)
        bf16 = q_network_speed(True, size, channels, hidden, args.q_seconds)
        q[name] = {"fp32_updates_per_s": fp32, "bf16_updates_per_s": bf16, "ratio": bf16 / fp32}
        print(json.dumps({"q_network": name, **q[name]}), flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {"machine": platform.processor() or platform.machine(), "seeds": args.seeds,
               "gan_steps": args.gan_steps, "dqn_steps": args.dqn_steps,
               "gan_speed_ratio": statistics.median(r["gan_bf16_steps_per_s"] / r["gan_fp32_steps_per_s"] for r in rows),
               "gan_fd_clf_ratio": {"fp32": med("gan_fp32_fd_clf_ratio"), "bf16": med("gan_bf16_fd_clf_ratio"),
                                    "bf16_minus_fp32": ci95([r["gan_bf16_fd_clf_ratio"] - r["gan_fp32_fd_clf_ratio"]
                                                             for r in rows])},
               "dqn_speed_ratio": statistics.median(r["dqn_bf16_steps_per_s"] / r["dqn_fp32_steps_per_s"] for r in rows),
               "dqn_return": {"fp32": med("dqn_fp32_return"), "bf16": med("dqn_bf16_return"),
                              "bf16_minus_fp32": ci95([r["dqn_bf16_return"] - r["dqn_fp32_return"] for r in rows])},
               "q_network": q, "per_seed": rows}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
