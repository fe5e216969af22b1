"""``clm dqn train|eval|envs``: the DQN agent on any Gymnasium environment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from clm.agents.dqn import DQN, DQNConfig, check_data_parallel
from clm.agents.training import train_dqn
from clm.cli.common import (
    add_training_arguments,
    config_and_run_dir,
    removed_on_failure,
)
from clm.core import distributed
from clm.core.checkpoint import checkpoint_exists, read_meta
from clm.core.config import load_config, read_yaml
from clm.core.errors import UsageError
from clm.core.rundir import dumps_line, require_run_dir
from clm.core.runtime import set_threads

#: DQNConfig keys that may change when a run is resumed (budgets, intervals, threads, device)
DQN_RESUMABLE = ("total_steps", "eval_interval", "eval_episodes", "log_interval", "checkpoint_interval",
                 "target_return", "stop_at_target", "threads", "device")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("dqn", help="train and evaluate DQN agents on Gymnasium environments")
    cmds = group.add_subparsers(dest="dqn_command", metavar="SUBCOMMAND", required=True)

    train = cmds.add_parser("train", help="train a DQN agent",
                            description="Train a DQN agent. Settings: DQNConfig keys, from --config "
                                        "and key=value overrides (e.g. lr=0.001 hidden=64,64).")
    train.add_argument("--env", help="Gymnasium environment id (default: the config's env_id)")
    add_training_arguments(train, "DQNConfig", "dqn")
    train.set_defaults(func=cmd_train)

    ev = cmds.add_parser("eval", help="evaluate a trained agent greedily")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--checkpoint", choices=["best", "latest"], default="best",
                    help="which weights to evaluate (default: best, falling back to latest)")
    ev.add_argument("--seed", type=int, default=None, help="seed of the evaluation episodes")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    envs = cmds.add_parser("envs", help="list the environment ids DQN can use")
    envs.add_argument("--filter", default="", help="only ids containing this text")
    envs.set_defaults(func=cmd_envs)


def cmd_train(args: argparse.Namespace) -> int:
    """Under torchrun every process runs this, with a data-parallel learner
    (``ddp_data``): all read and check the config, rank 0 alone makes and
    writes the run folder and prints."""
    overrides = list(args.overrides)
    if args.env:
        overrides.append(f"env_id={json.dumps(args.env)}")  # quoted: an id is never read as YAML
    launch = distributed.launch_env()
    main = launch is None or launch.rank == 0


    def check(cfg) -> None:  # before any folder is made: the errors DQN(...) would raise on every rank
        check_data_parallel(cfg, launch.world_size if launch else 1)
        distributed.device_for(cfg.device)

    cfg, run_dir = config_and_run_dir(args, DQNConfig, "dqn", overrides, "latest", resumable=DQN_RESUMABLE,
                                      check=check, create=main)
    with distributed.process_group(cfg.device):
        if main:
            return _train(args, cfg, run_dir)
        train_dqn(cfg, run_dir, resume=bool(args.resume), data_parallel=distributed.active(), write=False)
    return 0


def _train(args: argparse.Namespace, cfg, run_dir: Path) -> int:

    def warn(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)

    try:
        with removed_on_failure(run_dir, bool(args.resume)):
            summary = train_dqn(cfg, run_dir, resume=bool(args.resume), quiet=args.json,
                                data_parallel=distributed.active(), note=warn)
    except KeyboardInterrupt:
        if checkpoint_exists(run_dir / "checkpoints" / "latest"):
            _, meta = read_meta(run_dir / "checkpoints" / "latest")
            print(f"\ninterrupted; the checkpoint at env step {meta.get('env_steps')} is whole. Continue with:\n"
                  f"  clm dqn train --resume {run_dir}", file=sys.stderr)
            return 130
        raise
    if args.json:
        print(dumps_line({**summary, "run_dir": str(run_dir)}))
    else:
        print(f"eval return {summary['eval_return_mean']:.1f} +- {summary['eval_return_std']:.1f} "
              f"(best {summary['best_eval_return']:.1f}) after {summary['env_steps']} steps, "
              f"{summary['wall_seconds']:.1f} s, {summary['env_steps_per_second']:.0f} steps/s")
        print(f"run directory: {run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    run_dir = require_run_dir(args.run_dir, "dqn")
    cfg = load_config(DQNConfig, base=read_yaml(run_dir / "config.yaml"))
    set_threads(cfg.threads)
    agent = DQN(cfg)
    folder = run_dir / "checkpoints" / args.checkpoint
    if args.checkpoint == "best" and not (folder / "meta.json").exists():
        folder = run_dir / "checkpoints" / "latest"
    agent.load(folder, with_state=False)
    returns = agent.evaluate(args.episodes, seed=args.seed)
    out = {"eval_return_mean": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
           "episodes": args.episodes, "checkpoint": folder.name, "env_id": cfg.env_id}
    if args.json:
        print(dumps_line(out))
    else:
        print(f"{cfg.env_id}: greedy return {out['eval_return_mean']:.2f} +- {out['eval_return_std']:.2f} "
              f"over {args.episodes} episodes ({folder})")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    try:
        import minatar.gym

        minatar.gym.register_envs()
    except Exception:  # MinAtar is optional; list what is registered
        pass
    for env_id in sorted(gym.registry):
        if args.filter.lower() in env_id.lower():
            print(env_id)
    return 0

