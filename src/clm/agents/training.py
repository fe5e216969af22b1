"""Training a DQN: the one loop that ``clm dqn train``, ``clm tune dqn`` and
the CLM's agents run.

- :func:`train_steps`: a number of vector steps of acting and learning
  (the CLM's rounds call :func:`train_round`, which adds the round's figures);
- :func:`learn`: train until ``total_steps``, with greedy evaluations that
  keep the best weights (:func:`evaluate_and_keep_best`, also the final
  evaluation's path), metric rows, checkpoints and a clean Ctrl-C;
- :func:`train_dqn`: a whole run in a run folder (config.yaml, metrics.jsonl,
  checkpoints, summary.json), new or resumed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from clm.agents.dqn import DQN, DQNConfig
from clm.core.checkpoint import checkpoint_exists, read_meta
from clm.core.config import save_config
from clm.core.errors import UserError
from clm.core.logging import MetricLogger
from clm.core.rundir import write_summary
from clm.core.runtime import DeferredInterrupt, seed_everything, set_threads


def train_steps(agent: DQN, vector_steps: int, stop: Callable[[], bool] | None = None) -> int:
    """``vector_steps`` steps of ``agent``'s vector env (``num_envs`` env
    steps each), with the target updates and training bursts their
    intervals call for; stops after a whole step once ``stop()`` is true.
    Returns the steps taken."""
    for i in range(vector_steps):
        agent.collect_step()
        if stop is not None and stop():
            return i + 1
    return vector_steps


@dataclass
class RoundFigures:
    """What a round of :func:`train_round` did (this rank's own episodes)."""

    episodes: int  #: episodes that ended in the round
    successes: int  #: of them, those that ended with a success flag
    mean_return: float | None  #: the mean return of the last (up to 20) episodes; None before the first
    loss: float | None  #: the mean loss of the round's updates (over every rank's); None without updates


def train_round(agent: DQN, env_steps: int) -> RoundFigures:
    """About ``env_steps`` env steps of training (at least one vector step),
    as a CLM round gives its agent. Data-parallel, every rank calls it at the
    same point: the loss is a collective."""
    episodes, successes = agent.episodes, agent.successes
    train_steps(agent, max(1, env_steps // agent.cfg.num_envs))
    recent = agent.recent_returns
    return RoundFigures(agent.episodes - episodes, agent.successes - successes,
                        float(np.mean(recent)) if recent else None, agent.pop_mean_loss())


def evaluate_and_keep_best(agent: DQN, logger, checkpoint_dir: Path | None,
                           wall_seconds: float) -> tuple[float, float]:
    """A greedy evaluation of ``eval_episodes`` episodes: logged, its weights
    kept in ``checkpoint_dir/best`` when it beats every earlier one, the
    target return's first hit recorded. Returns (mean, std) of the returns."""
    returns = agent.evaluate(agent.cfg.eval_episodes)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    if logger is not None:
        logger.log(agent.env_steps, {"eval_return_mean": mean, "eval_return_std": std})
    if mean > agent.best_eval_return:
        agent.best_eval_return = mean
        if checkpoint_dir is not None:
            agent.save_weights(Path(checkpoint_dir) / "best", eval_return=mean)
    t = agent.cfg.target_return
    if t is not None and agent.target_reached_at is None and mean >= t:
        agent.target_reached_at = {"env_steps": agent.env_steps, "wall_seconds": wall_seconds}
    return mean, std


def check_finite(agent: DQN, checkpoint_dir: Path | None, force: bool = False) -> None:
    """Stop with a clear message when the loss (``force``) or the weights went
    non-finite (a good checkpoint is never overwritten by a broken one)."""
    if not force and agent.learner.weights_finite():
        return
    last = "none was saved yet"
    if checkpoint_dir is not None and checkpoint_exists(Path(checkpoint_dir) / "latest"):
        _, meta = read_meta(Path(checkpoint_dir) / "latest")
        last = f"{Path(checkpoint_dir) / 'latest'} (env step {meta.get('env_steps')})"
    raise UserError(f"training diverged: the Q-network's loss or weights became NaN or infinite by env step "
                    f"{agent.env_steps}; lower lr (now {agent.cfg.lr:g}) or max_grad_norm. The last good "
                    f"checkpoint: {last}")


def learn(agent: DQN, logger=None, checkpoint_dir: Path | None = None) -> dict[str, Any]:
    """Train ``agent`` until ``total_steps``; returns the summary figures.

    Evaluates greedily every ``eval_interval`` steps (keeping the best
    weights in ``checkpoint_dir/best``), logs every ``log_interval`` steps
    and checkpoints every ``checkpoint_interval`` steps. On Ctrl-C it saves
    a checkpoint and re-raises ``KeyboardInterrupt``.
    """
    c = agent.cfg
    t0 = time.perf_counter()
    steps_at_start = agent.env_steps
    next_log = _next_multiple(agent.env_steps, c.log_interval)
    next_eval = _next_multiple(agent.env_steps, c.eval_interval) if c.eval_interval > 0 else math.inf
    saving = checkpoint_dir is not None and c.checkpoint_interval > 0
    next_ckpt = _next_multiple(agent.env_steps, c.checkpoint_interval) if saving else math.inf
    wall = lambda: agent.wall_before + time.perf_counter() - t0  # noqa: E731
    save = lambda: agent.save(Path(checkpoint_dir) / "latest", wall_seconds=wall())  # noqa: E731
    alone = agent.world == 1
    with DeferredInterrupt() as stop:
        while agent.env_steps < c.total_steps:
            # steps up to the next evaluation, log row, checkpoint or the end (a Ctrl-C ends the step it
            # came in; data-parallel ranks stop together, at a log row)
            upcoming = min(next_eval, next_log, next_ckpt, c.total_steps) - agent.env_steps
            train_steps(agent, max(1, -(-upcoming // c.num_envs)), (lambda: stop.requested) if alone else None)
            logged_now = False
            if agent.env_steps >= next_eval:
                next_eval = _next_multiple(agent.env_steps, c.eval_interval)
                evaluate_and_keep_best(agent, logger, checkpoint_dir, wall())
                if c.stop_at_target and agent.target_reached_at is not None:
                    break
            if agent.env_steps >= next_log:
                next_log = _next_multiple(agent.env_steps, c.log_interval)
                logged_now = True
                _log_row(agent, logger, checkpoint_dir, steps_at_start, time.perf_counter() - t0)
            if agent.env_steps >= next_ckpt:
                next_ckpt = _next_multiple(agent.env_steps, c.checkpoint_interval)
                check_finite(agent, checkpoint_dir)
                save()
            stop_now = stop.requested if alone else logged_now and agent.parallel.any_rank(stop.requested)
            if stop_now:  # Ctrl-C: this step, its burst and its rows are whole, so resume is exact
                if checkpoint_dir is not None:
                    check_finite(agent, checkpoint_dir)
                    save()
                raise KeyboardInterrupt
    train_wall = wall()
    mean, std = evaluate_and_keep_best(agent, logger, checkpoint_dir, train_wall)  # the final evaluation
    if checkpoint_dir is not None:
        agent.save(Path(checkpoint_dir) / "latest", wall_seconds=train_wall)
    summary = {
        "eval_return_mean": mean,
        "eval_return_std": std,
        "best_eval_return": agent.best_eval_return,
        "env_steps": agent.env_steps,
        "gradient_steps": agent.gradient_steps,
        "episodes": agent.episodes,
        "wall_seconds": wall(),
        "train_wall_seconds": train_wall,
        "env_steps_per_second": agent.env_steps / max(train_wall, 1e-9),
        "exact_resume": agent.exact_resume,
    }
    if c.target_return is not None:
        hit = agent.target_reached_at
        summary["target_return"] = c.target_return
        summary["target_reached_env_steps"] = hit["env_steps"] if hit else None
        summary["target_reached_seconds"] = hit["wall_seconds"] if hit else None
    return summary


def _log_row(agent: DQN, logger, checkpoint_dir: Path | None, steps_at_start: int, elapsed: float) -> None:
    """One metric row: the mean loss since the last (a collective when
    data-parallel), epsilon, counters, speed, the recent episodes' return."""
    row = {"loss": agent.pop_mean_loss(), "epsilon": agent.epsilon(), "episodes": agent.episodes,
           "gradient_steps": agent.gradient_steps,
           "env_steps_per_second": (agent.env_steps - steps_at_start) / max(elapsed, 1e-9)}
    if row["loss"] is not None and not math.isfinite(row["loss"]):
        # data-parallel: decide on the weights, the same on every rank (a rank's loss is its own)
        check_finite(agent, checkpoint_dir, force=agent.world == 1)
    if agent.recent_returns:
        row["episode_return"] = float(np.mean(agent.recent_returns))
    if logger is not None:
        logger.log(agent.env_steps, {k: v for k, v in row.items() if v is not None})
        logger.progress(agent.env_steps, ret=row.get("episode_return", float("nan")), best=agent.best_eval_return)


def _next_multiple(value: int, interval: int) -> int:
    return (value // interval + 1) * interval


def make_agent(cfg: DQNConfig, envs: gym.vector.VectorEnv | None = None, data_parallel: bool = False,
               checkpoint: Path | None = None) -> DQN:
    """A seeded agent on ``cfg.threads`` threads, resumed from ``checkpoint`` when given."""
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    agent = DQN(cfg, envs=envs, data_parallel=data_parallel)
    if checkpoint is not None:
        agent.load(checkpoint)
    return agent


def train_dqn(cfg: DQNConfig, run_dir: Path | None, *, resume: bool = False, quiet: bool = False,
              listener: Callable[[int, dict[str, Any]], None] | None = None,
              envs: gym.vector.VectorEnv | None = None, data_parallel: bool = False, write: bool = True,
              note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """A DQN run in ``run_dir`` (new, or ``resume``d from its latest
    checkpoint): config.yaml, metrics.jsonl (each row also to
    ``listener(step, metrics)``), checkpoints/{latest,best} and summary.json,
    whose figures it returns. ``quiet``: no progress bar. ``note(text)`` gets
    what a user should know (a resume that is not bit-exact).
    ``write=False``: a data-parallel rank other than 0, which trains with the
    others and writes nothing (``run_dir`` is read only to resume; None for
    a new run). On Ctrl-C the latest checkpoint is whole and
    ``KeyboardInterrupt`` propagates."""
    checkpoint_dir = None if run_dir is None else Path(run_dir) / "checkpoints"
    agent = make_agent(cfg, envs, data_parallel, checkpoint_dir / "latest" if resume else None)
    if not write:
        return learn(agent)
    if resume and agent.exact_resume is False and note is not None:
        if agent.world > 1 and not agent.replicated:
            note("a data-parallel run with ddp_data=rank saves rank 0's environments and replay only; the other "
                 "ranks continue from them with fresh streams of their own (not bit-exact)")
        else:
            note("the environment state could not be saved whole; the resumed run restarts its episodes "
                 "(not bit-exact)")
    save_config(cfg, Path(run_dir) / "config.yaml")
    logger = MetricLogger(Path(run_dir), total_steps=cfg.total_steps, quiet=quiet, initial_step=agent.env_steps,
                          unit="step", resume=resume, listener=listener)
    try:
        summary = learn(agent, logger=logger, checkpoint_dir=checkpoint_dir)
    finally:
        logger.close()
    summary = {"env_id": cfg.env_id, **summary}
    if agent.world > 1:
        summary["world_size"] = agent.world
    write_summary(Path(run_dir), summary)
    return summary
