"""One env of a domain's vector env with the plain ``gymnasium.Env`` API.

The CLM's domain envs (the canvas, the word-edit env) are written as vector
envs with same-step autoreset; :class:`SingleEnvView` shows one of them
(``num_envs=1``) as an ordinary env, for Gymnasium's env checker and for
users who want the plain API. The env's ``np_random`` is the generator the
vector env hands to G, so ``reset(seed=...)`` reproduces G's proposals too.
When an episode ends, ``step`` returns its final observation; the next
``reset`` starts a fresh one.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np


class SingleEnvView(gym.Env):
    """A plain env over ``vec`` (a domain vector env with ``num_envs=1``, an
    ``rng`` it draws from, ``finished`` episodes and ``pop_finished``)."""

    metadata = {"render_modes": []}

    def __init__(self, vec: gym.vector.VectorEnv):
        if vec.num_envs != 1:
            raise ValueError(f"a single-env view needs a vector env of one env, got {vec.num_envs}")
        self.vec = vec
        self.observation_space = vec.single_observation_space
        self.action_space = vec.single_action_space

    @property
    def n_actions(self) -> int:
        return int(self.action_space.n)

    @property
    def finished(self) -> deque:
        return self.vec.finished

    def pop_finished(self) -> list[dict]:
        return self.vec.pop_finished()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.vec.rng = self.np_random
        obs, _ = self.vec.reset()
        return obs[0].copy(), {}

    def step(self, action):
        obs, reward, terminated, truncated, infos = self.vec.step(np.array([action]))
        if terminated[0] or truncated[0]:
            obs = infos["final_obs"]
        return obs[0].copy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}
