"""A DQN's checkpoints: its full training state as plain data (safetensors +
JSON through :mod:`clm.core.checkpoint`), and its restoration. Resuming from
it continues exactly (the same numbers as an uninterrupted run) when the
environments' whole state could be saved."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from clm.agents.envs import env_state, restore_env_state
from clm.core.checkpoint import strip_prefix
from clm.core.config import to_dict
from clm.core.errors import UserError
from clm.core.runtime import rng_state, set_rng_state

#: config keys the saved replay and environments are shaped by: a resumed run must keep them
SHAPE_KEYS = ("num_envs", "buffer_size", "prioritized", "demo_buffer_size")


def weights(agent: Any) -> dict[str, torch.Tensor]:
    """The online and target networks' tensors of ``agent`` (a DQN)."""
    return {**{f"q.{k}": v for k, v in agent.q.state_dict().items()},
            **{f"q_target.{k}": v for k, v in agent.q_target.state_dict().items()}}


def training_state(agent: Any, wall_seconds: float = 0.0) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(weights, state, meta) of ``agent``'s full training state, plain data
    only: resuming from it continues exactly when ``meta["exact_resume"]``."""
    learner, collector, cfg = agent.learner, agent.collector, agent.cfg
    env, whole = env_state(collector.envs)
    state = {
        "optimizer": learner.optimizer.state_dict(),
        "replay": agent.replay.state_dict(),
        "demos": None if learner.demos is None else learner.demos.state_dict(),
        "counters": {"env_steps": collector.env_steps, "gradient_steps": learner.gradient_steps,
                     "episodes": collector.episodes, "successes": collector.successes,
                     "best_eval_return": agent.best_eval_return,
                     "wall_seconds": wall_seconds, "target_reached_at": agent.target_reached_at,
                     "loss_sum": float(learner.loss_sum), "loss_count": learner.loss_count},
        "rng": {"numpy_generator": agent.rng.bit_generator.state, "global": rng_state()},
        "episode": {"obs": collector.obs, "prev_done": collector.prev_done, "ep_return": collector.ep_return,
                    "recent_returns": list(collector.recent_returns)},
        "env": env,
        "shape": {key: getattr(cfg, key) for key in SHAPE_KEYS},
    }
    return weights(agent), state, {"kind": "dqn", "env_steps": collector.env_steps, "exact_resume": whole,
                                   "config": to_dict(cfg)}


def load_training_state(agent: Any, weights: dict[str, torch.Tensor], state: dict | None, meta: dict,
                        where: str = "the checkpoint") -> None:
    """Restore :func:`training_state` into ``agent`` (weights only when ``state`` is None)."""
    if meta.get("kind") != "dqn":
        raise UserError(f"{where} is not a DQN checkpoint (kind: {meta.get('kind')})")
    try:
        agent.q.load_state_dict(strip_prefix(weights, "q."))
        agent.q_target.load_state_dict(strip_prefix(weights, "q_target."))
    except RuntimeError as e:
        raise UserError(f"checkpoint {where} does not fit this config's network: {str(e).splitlines()[0]}")
    if state is None:
        return
    learner, collector, cfg = agent.learner, agent.collector, agent.cfg
    for key, value in state.get("shape", {}).items():
        if getattr(cfg, key) != value:
            raise UserError(f"{key} is {getattr(cfg, key)} in this config but {value} in checkpoint {where}: "
                            f"the replay and environments are saved at that size; resume without changing "
                            f"{key}, or start a new run", exit_code=2)
    learner.optimizer.load_state_dict(state["optimizer"])
    agent.replay.load_state_dict(state["replay"])
    if state.get("demos") is not None:
        agent.demo_buffer().load_state_dict(state["demos"])
    cnt = state["counters"]
    collector.env_steps, learner.gradient_steps = cnt["env_steps"], cnt["gradient_steps"]
    collector.episodes, agent.best_eval_return = cnt["episodes"], cnt["best_eval_return"]
    collector.successes = cnt.get("successes", 0)
    learner.loss_sum.fill_(cnt.get("loss_sum", 0.0))
    learner.loss_count = int(cnt.get("loss_count", 0))
    agent.wall_before, agent.target_reached_at = cnt["wall_seconds"], cnt["target_reached_at"]
    learner.target_synced_at = -1  # unknown after a load: copy at the next tick
    agent.rng.bit_generator.state = state["rng"]["numpy_generator"]
    set_rng_state(state["rng"]["global"])
    ep = state["episode"]
    collector.obs, collector.prev_done, collector.ep_return = ep["obs"], ep["prev_done"], ep["ep_return"]
    collector.recent_returns = deque(ep["recent_returns"], maxlen=20)
    restored = restore_env_state(collector.envs, state["env"])
    # Exact only when the env's whole state was saved and reads back the same.
    agent.exact_resume = bool(meta.get("exact_resume", False)) and restored
    parallel = agent.parallel
    if parallel.own_streams:
        # The checkpoint holds rank 0's envs, replay and draws only. The other ranks start from its
        # replay, with fresh streams of their own (not rank 0's again), and new episodes.
        if parallel.rank:
            agent.rng, env_seed = parallel.resumed_seeds(cfg.seed, cfg.num_envs, collector.env_steps)
            collector.restart_episodes(env_seed)
        agent.exact_resume = False
