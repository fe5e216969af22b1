"""``DQN``: the agent that composes the parts, bound to a vector environment.

The parts (Stable-Baselines3's split): the config (:mod:`.config`), a replay
(:mod:`clm.agents.replay`), the collector that acts into it
(:mod:`.collector`), the learner that updates the Q-networks from it
(:mod:`.learner`), the data-parallel share of the work (:mod:`.parallel`)
and the checkpointed state (:mod:`.state`). The agent wires them together
and keeps what belongs to a training run (the best greedy return, when the
target was reached); the training loop, its evaluations and the run folder
are :mod:`clm.agents.training`'s.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from clm.agents.dqn import state as dqn_state
from clm.agents.dqn.collector import Collector
from clm.agents.dqn.config import DQNConfig, q_network_args
from clm.agents.dqn.learner import Learner
from clm.agents.dqn.parallel import DataParallel
from clm.agents.envs import check_spaces, make_vec_env
from clm.agents.replay import PrioritizedReplay, UniformReplay
from clm.core.checkpoint import load_checkpoint, save_checkpoint
from clm.core.errors import UserError


class DQN:
    """A DQN agent bound to a vector environment.

    >>> agent = DQN(DQNConfig(total_steps=20_000))
    >>> summary = clm.agents.training.learn(agent)
    >>> agent.evaluate(10)
    """

    def __init__(self, cfg: DQNConfig, envs: gym.vector.VectorEnv | None = None,
                 eval_envs: gym.vector.VectorEnv | None = None, data_parallel: bool = False):
        """``data_parallel``: learn together with the other ranks of the running
        process group (torchrun), as ``cfg.ddp_data`` says: every gradient is
        averaged over the ranks, each of which computes ``batch_size / N`` rows
        of every update. The agent's own learner only: the CLM's designer
        stays a plain agent on every rank."""
        self.cfg = cfg
        self.parallel = DataParallel(cfg, data_parallel)
        self.device = self.parallel.device(cfg.device)
        self.envs = envs if envs is not None else make_vec_env(cfg.env_id, cfg.num_envs)
        check_spaces(self.envs, cfg.env_id)
        if self.envs.num_envs != cfg.num_envs:
            raise UserError(f"the vector env has {self.envs.num_envs} envs, config num_envs is {cfg.num_envs}")
        self._eval_envs = eval_envs
        obs_space = self.envs.single_observation_space
        self.n_actions = int(self.envs.single_action_space.n)
        self.obs_shape, self.obs_dtype = tuple(obs_space.shape), obs_space.dtype
        replay_cls = PrioritizedReplay if cfg.prioritized else UniformReplay
        extra = dict(alpha=cfg.per_alpha, eps=cfg.per_eps) if cfg.prioritized else {}
        self.replay = replay_cls(cfg.buffer_size, cfg.num_envs, self.obs_shape, obs_dtype=self.obs_dtype,
                                 n_step=cfg.n_step, gamma=cfg.gamma, device=self.device, **extra)
        rng_seed, env_seed = self.parallel.seeds(cfg.seed, cfg.num_envs)
        rng = np.random.default_rng(rng_seed)  # one stream for acting and sampling, in a fixed order
        self.learner = Learner(cfg, q_network_args(cfg, self.obs_shape, self.n_actions), self.device,
                               self.parallel, self.replay, rng)
        self.collector = Collector(cfg, self.envs, self.replay, rng, env_seed)
        # the run's own figures (checkpointed with the parts' counters)
        self.best_eval_return = -math.inf
        self.target_reached_at: dict[str, float] | None = None
        self.wall_before = 0.0  # wall seconds of earlier sessions of a resumed run
        self.exact_resume: bool | None = None  # None: not resumed; after a load, whether it was exact

    # -- the parts' figures, read (and set, for a restored run) through the agent ----------------
    @property
    def rng(self) -> np.random.Generator:
        return self.collector.rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self.collector.rng = self.learner.rng = value

    q = property(lambda self: self.learner.q)
    q_target = property(lambda self: self.learner.q_target)
    optimizer = property(lambda self: self.learner.optimizer)
    demos = property(lambda self: self.learner.demos)
    gradient_steps = property(lambda self: self.learner.gradient_steps)
    env_steps = property(lambda self: self.collector.env_steps)
    episodes = property(lambda self: self.collector.episodes)
    successes = property(lambda self: self.collector.successes)
    world = property(lambda self: self.parallel.world)
    rank = property(lambda self: self.parallel.rank)
    replicated = property(lambda self: self.parallel.replicated)

    @property
    def recent_returns(self) -> deque[float]:
        return self.collector.recent_returns

    # -- acting and learning ---------------------------------------------------------------
    def epsilon(self) -> float:
        return self.collector.epsilon()

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        return self.learner.greedy_actions(obs)

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        return self.collector.act(obs, epsilon, self.learner.greedy_actions)

    def collect_step(self) -> None:
        """One vector step: act, store the transitions, track episodes, update
        the target net when its interval ticks, train when ``train_freq`` ticks."""
        c = self.cfg
        before = self.collector.step(self.learner.greedy_actions)
        now = self.collector.env_steps
        if now // c.target_update_interval > before // c.target_update_interval:
            self.learner.update_target()
        if now >= c.learning_starts and now // c.train_freq > before // c.train_freq:
            self.learner.train_burst(c.gradient_steps, now)

    def pop_mean_loss(self) -> float | None:
        """The mean loss of the updates since the last call (None: none); see
        :meth:`Learner.pop_mean_loss` (a collective when data-parallel)."""
        return self.learner.pop_mean_loss()

    # -- demonstrations (DQfD) ------------------------------------------------------------
    def add_demonstrations(self, obs, actions, rewards, next_obs, terminated, episode_end) -> int:
        """Keep expert transitions (whole episodes, in order; arrays with a
        leading transitions axis, ``episode_end`` marking each episode's last
        step) for DQfD. They are never evicted by the agent's own experience;
        past ``demo_buffer_size`` the oldest demonstrations go first. Returns
        the number of demonstration transitions held."""
        if not self.cfg.uses_demonstrations:
            raise UserError("demonstrations need demo_fraction > 0 or pretrain_steps > 0 in the DQN config")
        if len(actions) == 0:
            return 0 if self.demos is None else len(self.demos)
        if tuple(obs.shape[1:]) != self.obs_shape:
            raise UserError(f"demonstration observations have shape {tuple(obs.shape[1:])}; "
                            f"the environment's are {self.obs_shape}")
        if not bool(np.asarray(episode_end)[-1]):
            raise UserError("demonstrations must end with a complete episode (episode_end[-1] is False)")
        self.demo_buffer().extend(obs, actions, rewards, next_obs, terminated, episode_end)
        return len(self.demos)

    def demo_buffer(self) -> UniformReplay:
        """The demonstrations' replay, made on first use."""
        return self.learner.demo_buffer(self.obs_shape, self.obs_dtype)

    def pretrain(self, n_updates: int | None = None) -> None:
        """DQfD's pre-training: ``n_updates`` (default ``pretrain_steps``)
        updates on demonstrations alone, with the target network copied as
        often, in updates, as during training."""
        if self.demos is None or len(self.demos) == 0:
            raise UserError("pretrain() needs demonstrations: call add_demonstrations first")
        c = self.cfg
        n_updates = c.pretrain_steps if n_updates is None else n_updates
        every = max(1, c.target_update_interval * c.gradient_steps // c.train_freq)
        done = 0
        while done < n_updates:
            k = min(every, n_updates - done)
            self.learner.train_burst(k, self.env_steps, demo_only=True)
            self.learner.update_target()
            done += k

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, n_episodes: int, seed: int | None = None) -> np.ndarray:
        """Greedy returns of ``n_episodes`` episodes, one per env of an eval vector env."""
        if self._eval_envs is None or self._eval_envs.num_envs != n_episodes:
            self._eval_envs = make_vec_env(self.cfg.env_id, n_episodes)
        return greedy_returns(self._eval_envs, self.greedy_actions,
                              seed=self.cfg.seed + 10_000 if seed is None else seed)

    # -- checkpoints (see state.py) -------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return dqn_state.weights(self)

    def save_weights(self, folder: Path, **meta: Any) -> None:
        save_checkpoint(folder, self.weights(), {}, {"kind": "dqn", "env_steps": self.env_steps, **meta})

    def training_state(self, wall_seconds: float = 0.0) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """(weights, state, meta) of the full training state, plain data only:
        resuming from it continues exactly when ``meta["exact_resume"]``."""
        return dqn_state.training_state(self, wall_seconds)

    def load_training_state(self, weights: dict[str, torch.Tensor], state: dict | None, meta: dict,
                            where: str = "the checkpoint") -> None:
        """Restore :meth:`training_state` (weights only when ``state`` is None)."""
        dqn_state.load_training_state(self, weights, state, meta, where)

    def save(self, folder: Path, wall_seconds: float = 0.0) -> None:
        """The full training state: resuming from it continues exactly."""
        save_checkpoint(folder, *self.training_state(wall_seconds))

    def load(self, folder: Path, with_state: bool = True) -> None:
        weights, state, meta = load_checkpoint(folder, map_location=self.device, with_state=with_state)
        self.load_training_state(weights, state if with_state else None, meta, where=str(folder))


def greedy_returns(envs: gym.vector.VectorEnv, policy, seed: int) -> np.ndarray:
    """Run every env of ``envs`` for exactly one episode with ``policy(obs) ->
    actions``; return the episode returns (later episodes are ignored)."""
    obs, _ = envs.reset(seed=seed)
    n = envs.num_envs
    returns = np.zeros(n)
    running = np.ones(n, dtype=bool)
    while running.any():
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs))
        returns += np.where(running, rewards, 0.0)
        running &= ~np.logical_or(terminated, truncated)
    return returns
