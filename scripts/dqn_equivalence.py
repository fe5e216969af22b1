"""Prove that two versions of the DQN compute the same numbers, bit for bit.

Runs the same short trainings at a fixed seed on two source trees (this
working tree and another commit, checked out in a temporary git worktree)
and compares every tensor of every checkpoint (weights.safetensors and
state.safetensors: networks, Adam's moments, the replay, the RNG states),
state.json and meta.json, the metric rows and the summary, leaving out only
the wall-clock figures (and TensorBoard's time-stamped copy of the rows). Cases:

* ``cartpole``: ``clm dqn train --env CartPole-v1 total_steps=5000`` (the
  NumPy fast path, uniform replay, greedy evaluations keeping the best);
* ``per_nstep``: prioritized replay, 3-step returns, Double DQN, 2 envs;
* ``torch_path``: bfloat16 autocast (the autograd path of an MLP), Polyak
  target updates, MSE loss, observation noise;
* ``sokoban_dqfd``: the CLM player's kind of agent: a conv dueling Double DQN
  on Sokoban with the solver's demonstrations, DQfD pre-training, then
  training that mixes both buffers; driven through the API both versions
  share (add_demonstrations, pretrain, collect_step, pop_mean_loss,
  training_state) and saved as a checkpoint;
* ``ddp_rank``, ``ddp_replicated``: ``torchrun --nproc_per_node 2 -m clm dqn
  train`` on the CPU (gloo), with ``ddp_data=rank`` and with
  ``ddp_data=replicated`` plus prioritized replay.

    PYTHONPATH=src .venv/bin/python scripts/dqn_equivalence.py --base main

Prints one final JSON line: each case's verdict and the number of tensors
compared. Exit code 1 if any case differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: metric and summary keys that measure time, not computation
TIMED = {"wall_seconds", "train_wall_seconds", "env_steps_per_second", "target_reached_seconds", "time", "elapsed"}

CLI_CASES = {
    "cartpole": ["--env", "CartPole-v1", "total_steps=5000", "seed=0"],
    "per_nstep": ["--env", "CartPole-v1", "total_steps=5000", "seed=1", "prioritized=true", "n_step=3",
                  "double_dqn=true", "num_envs=2", "eval_interval=1000", "eval_episodes=5", "log_interval=500",
                  "train_freq=64", "gradient_steps=32", "checkpoint_interval=2000"],
    "torch_path": ["--env", "CartPole-v1", "total_steps=3000", "seed=2", "amp=true", "tau=0.1", "loss=mse",
                   "hidden=32,32", "eval_interval=1500", "eval_episodes=5", "learning_starts=500"],
}

#: data-parallel runs: torchrun with 2 gloo processes on the CPU (each rank its own streams; replicated
#: ranks slicing one global batch, with prioritized replay's gathered priorities)
DDP_CASES = {
    "ddp_rank": ["--env", "CartPole-v1", "total_steps=2000", "seed=3", "ddp_data=rank", "eval_interval=1000",
                 "eval_episodes=5", "log_interval=500"],
    "ddp_replicated": ["--env", "CartPole-v1", "total_steps=2000", "seed=4", "ddp_data=replicated",
                       "prioritized=true", "n_step=2", "eval_interval=1000", "eval_episodes=5", "log_interval=500"],
}

SOKOBAN_DRIVER = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
from clm.agents.dqn import DQN, DQNConfig
from clm.core.checkpoint import save_checkpoint
from clm.core.runtime import seed_everything, set_threads
from clm.domains.levels.demos import solver_demonstrations
from clm.domains.levels.env import SokobanVecEnv
from clm.domains.levels.generator import generate_levels

out = Path(sys.argv[1])
set_threads(1)
seed_everything(0)
levels = generate_levels(12, size=7, n_boxes=1, seed=5, min_pushes=2)
# the CLM player's settings (clm run's default player), with budgets cut to seconds
cfg = DQNConfig(env_id="sokoban", num_envs=8, network="conv", conv_channels=(16, 32), hidden=(128,),
                dueling=True, double_dqn=True, n_step=3, gamma=0.97, lr=5e-4, batch_size=64,
                buffer_size=4_000, learning_starts=200, train_freq=32, gradient_steps=2,
                target_update_interval=256, epsilon_start=0.2, exploration_fraction=0.3, epsilon_end=0.02,
                max_grad_norm=10.0, eval_interval=0, demo_fraction=0.25, pretrain_steps=60, seed=0)
agent = DQN(cfg, envs=SokobanVecEnv(levels[:8], num_envs=cfg.num_envs, seed=0))
d = solver_demonstrations(levels[:8], symmetries=True)
rows = {"demos": agent.add_demonstrations(d.obs, d.actions, d.rewards, d.next_obs, d.terminated, d.episode_end)}
agent.pretrain()
rows["pretrain_loss"] = agent.pop_mean_loss()
losses = []
for _ in range(150):
    agent.collect_step()
    if agent.env_steps % 200 == 0:
        losses.append(agent.pop_mean_loss())
rows.update(losses=losses, episodes=agent.episodes, successes=agent.successes,
            gradient_steps=agent.gradient_steps, recent_returns=list(agent.recent_returns),
            greedy=agent.greedy_actions(d.obs[:64]).tolist())
weights, state, meta = agent.training_state()
save_checkpoint(out / "checkpoints" / "latest", weights, state, meta)
(out / "summary.json").write_text(json.dumps(rows, indent=1))
"""


def run_cases(src: Path, out: Path, python: str, cases: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for case in cases:
        where = out / case
        if case == "sokoban_dqfd":
            where.mkdir(parents=True)
            cmd = [python, "-c", SOKOBAN_DRIVER, str(where)]
        elif case in DDP_CASES:
            cmd = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "clm",
                   "dqn", "train", "--out", str(where), "--json", *DDP_CASES[case]]
        else:
            cmd = [python, "-m", "clm", "dqn", "train", "--out", str(where), "--json", *CLI_CASES[case]]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{case} failed on {src}:\n{done.stderr[-3000:]}")


def _strip(x):
    """A JSON tree without its wall-clock entries."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIMED}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def compare_trees(a: Path, b: Path) -> tuple[list[str], int]:
    """Differences between two run folders, and the number of tensors compared."""
    from safetensors.torch import load_file
    import torch

    diffs, n_tensors = [], 0
    # tb/: TensorBoard's copies of the metric rows, stamped with wall-clock times
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and "tb" not in p.relative_to(a).parts)
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and "tb" not in p.relative_to(b).parts)
    if files_a != files_b:
        diffs.append(f"file lists differ: {sorted(set(map(str, files_a)) ^ set(map(str, files_b)))}")
    for rel in files_a:
        if rel not in files_b:
            continue
        fa, fb = a / rel, b / rel
        if rel.suffix == ".safetensors":
            ta, tb = load_file(str(fa)), load_file(str(fb))
            if sorted(ta) != sorted(tb):
                diffs.append(f"{rel}: tensor names differ")
                continue
            for k in ta:
                n_tensors += 1
                if ta[k].dtype != tb[k].dtype or ta[k].shape != tb[k].shape or not torch.equal(ta[k], tb[k]):
                    diffs.append(f"{rel}:{k} differs")
        elif rel.name == "meta.json" and rel.parent.name in ("latest", "best"):
            ma, mb = json.loads(fa.read_text()), json.loads(fb.read_text())
            for m in (ma, mb):  # the hash of state.json covers its wall-clock entries
                m.get("files", {}).pop("state.json", None)
            if _strip(ma) != _strip(mb):
                diffs.append(f"{rel} differs")
        elif rel.suffix == ".json":
            if _strip(json.loads(fa.read_text())) != _strip(json.loads(fb.read_text())):
                diffs.append(f"{rel} differs")
        elif rel.suffix == ".jsonl":
            ra = [_strip(json.loads(line)) for line in fa.read_text().splitlines() if line.strip()]
            rb = [_strip(json.loads(line)) for line in fb.read_text().splitlines() if line.strip()]
            if ra != rb:
                diffs.append(f"{rel} differs ({len(ra)} vs {len(rb)} rows)")
        elif fa.read_bytes() != fb.read_bytes():
            diffs.append(f"{rel} differs")
    return diffs, n_tensors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="main", help="the commit to compare against (default: main)")
    ap.add_argument("--cases", default=",".join([*CLI_CASES, "sokoban_dqfd", *DDP_CASES]))
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    cases = args.cases.split(",")
    base = subprocess.run(["git", "-C", str(here), "rev-parse", args.base], capture_output=True, text=True,
                          check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="dqn-equiv-") as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "old-tree"
        subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(old_tree), base],
                       check=True, capture_output=True)
        try:
            run_cases(old_tree / "src", tmp / "old", args.python, cases)
            run_cases(here / "src", tmp / "new", args.python, cases)
            result = {"base": base, "head": head, "cases": {}}
            for case in cases:
                diffs, n = compare_trees(tmp / "old" / case, tmp / "new" / case)
                result["cases"][case] = {"identical": not diffs, "tensors_compared": n, "diffs": diffs[:10]}
        finally:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)
    result["identical"] = all(c["identical"] for c in result["cases"].values())
    print(json.dumps(result))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
