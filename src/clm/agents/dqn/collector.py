"""The DQN's collector: steps a vector environment with an epsilon-greedy
policy, stores the transitions in the replay and keeps the episodes' books.

Gymnasium's two autoreset modes are both handled: with ``SAME_STEP`` an
ending step's real last observation comes from the step's infos (the
returned one is already the next episode's first); with ``NEXT_STEP`` the
step after an ending one only resets that env, and is not stored as a
transition.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import gymnasium as gym
import numpy as np

from clm.agents.dqn.config import DQNConfig, linear_schedule
from clm.agents.envs import autoreset_mode, final_observations
from clm.agents.replay import UniformReplay

Policy = Callable[[np.ndarray], np.ndarray]


class Collector:
    """Acting and bookkeeping; every field goes into checkpoints."""

    def __init__(self, cfg: DQNConfig, envs: gym.vector.VectorEnv, replay: UniformReplay,
                 rng: np.random.Generator, env_seed: int):
        self.cfg, self.envs, self.replay, self.rng = cfg, envs, replay, rng
        self.n_actions = int(envs.single_action_space.n)
        self.same_step = autoreset_mode(envs) == gym.vector.AutoresetMode.SAME_STEP
        self.env_steps = 0
        self.episodes = 0
        self.successes = 0  # episodes that ended with a success flag set
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.restart_episodes(env_seed)

    def restart_episodes(self, env_seed: int) -> None:
        """Start every env afresh at the next step, its reset seeded with ``env_seed``."""
        self.env_seed = env_seed
        self.obs: np.ndarray | None = None
        self.prev_done = np.zeros(self.cfg.num_envs, dtype=bool)
        self.ep_return = np.zeros(self.cfg.num_envs, dtype=np.float64)

    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(c.epsilon_start, c.epsilon_end, c.exploration_fraction * c.total_steps,
                               self.env_steps)

    def act(self, obs: np.ndarray, epsilon: float, greedy: Policy) -> np.ndarray:
        """Epsilon-greedy actions: ``greedy(obs)`` where a uniform draw is at
        least ``epsilon``, else a uniformly random action."""
        n = len(obs)
        u = self.rng.random(2 * n)  # one draw for both: Generator.integers costs 7x random
        explore = u[:n] < epsilon
        random_actions = (u[n:] * self.n_actions).astype(np.int64)
        if explore.all():  # no forward pass needed: early training is all exploration
            return random_actions
        return np.where(explore, random_actions, greedy(obs))

    def step(self, greedy: Policy) -> int:
        """One vector step: act, store the transitions, track episodes.
        Returns the env step count before it."""
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self.env_seed)
        obs = self.obs
        actions = self.act(obs, self.epsilon(), greedy)
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        done = np.logical_or(terminated, truncated)
        if self.same_step:
            real_next, valid = final_observations(next_obs, infos, done), None
        else:  # next-step autoreset: this step only reset the envs that ended last step
            real_next, valid = next_obs, ~self.prev_done
        self.replay.add(obs, actions, rewards, real_next, terminated, truncated, valid)
        live = valid if valid is not None else True
        self.ep_return += np.where(live, rewards, 0.0)
        success = infos.get("is_success", infos.get("solved")) if isinstance(infos, dict) else None
        if success is not None:  # success flags (Gymnasium's is_success; Sokoban's solved)
            self.successes += int(np.sum(np.logical_and(done, success)))
        for i in np.flatnonzero(done):
            self.recent_returns.append(float(self.ep_return[i]))
            self.ep_return[i] = 0.0
            self.episodes += 1
        self.prev_done = done
        self.obs = next_obs
        before = self.env_steps
        self.env_steps += self.cfg.num_envs
        return before
