"""Gymnasium environments for Sokoban (rules in :mod:`clm.domains.levels.sim`).

* :class:`SokobanEnv`: one level at a time, one-hot ``(7, H, W)`` or RGB
  observations, ``Discrete(4)`` actions.
* :class:`SokobanVecEnv`: N levels stepped at once by a compiled kernel,
  same-step autoreset (``infos["final_obs"]`` holds the real last
  observation of the envs that ended), ``infos["solved"]``.

Both draw a new level from their source on every reset: a list of Levels, a
Boxoban file or folder, or a ``sampler(rng, n) -> list[Level]``; replace it
between rounds with ``set_source``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from clm.core.errors import UserError
from clm.domains.levels.level import N_TILES, Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.sim import MAX_STEPS, N_ACTIONS, BatchState, LevelSource, check_actions

__all__ = ["SokobanEnv", "SokobanVecEnv", "LevelSource"]


class SokobanEnv(gymnasium.Env):
    """One Sokoban level per episode, drawn from ``source`` on each reset.

    ``obs="onehot"``: ``Box(0, 1, (7, H, W), uint8)`` (channel = tile id of
    ``TILE_CHARS``); ``obs="rgb"``: ``Box(0, 255, (H*cell, W*cell, 3), uint8)``
    drawn by :func:`clm.domains.levels.render.tiles_to_rgb`.
    ``reset(options={"level": Level})`` plays a given level.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        source,
        obs: str = "onehot",
        max_steps: int = MAX_STEPS,
        render_mode: str | None = None,
        cell: int = 8,
        sequential: bool = False,
    ):
        if obs not in ("onehot", "rgb"):
            raise UserError(f"unknown observation kind {obs!r}; choose 'onehot' or 'rgb'")
        if render_mode not in (None, "rgb_array", "ansi"):
            raise UserError(f"unknown render mode {render_mode!r}; choose 'rgb_array' or 'ansi'")
        self.source = LevelSource(source, sequential=sequential)
        self.obs_kind = obs
        self.cell = cell
        self.render_mode = render_mode
        self.max_steps = max_steps
        h, w = self.source.shape
        self._state = BatchState(1, (h, w), max_steps)
        if obs == "onehot":
            self.observation_space = spaces.Box(0, 1, (N_TILES, h, w), np.uint8)
        else:
            self.observation_space = spaces.Box(0, 255, (h * cell, w * cell, 3), np.uint8)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._actions = np.zeros(1, dtype=np.int64)

    def set_source(self, source) -> None:
        """Draw the next levels from ``source`` (levels of the same size)."""
        new = LevelSource(source)
        if tuple(new.shape) != self._state.shape:
            raise UserError(f"new levels are {tuple(new.shape)}; this environment holds {self._state.shape}")
        self.source = new

    def _obs(self) -> np.ndarray:
        if self.obs_kind == "onehot":
            return self._state.obs[0].copy()
        from clm.domains.levels.render import tiles_to_rgb

        return tiles_to_rgb(self._state.tiles[0], cell=self.cell)

    def _info(self) -> dict[str, Any]:
        s = self._state
        return {"steps": int(s.steps[0]), "boxes_on_goals": int(s.on_goal[0]), "solved": bool(s.on_goal[0] == s.n_boxes[0])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        level = (options or {}).get("level")
        if level is not None:
            tiles = levels_to_tiles([level])
        else:
            tiles = self.source.draw(self.np_random, 1)
        self._state.load(np.array([0]), tiles)
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0..3 (up, down, left, right), got {action!r}")
        self._actions[0] = int(action)
        s = self._state
        s.step(self._actions)
        return self._obs(), float(s.reward[0]), bool(s.terminated[0]), bool(s.truncated[0]), self._info()

    @property
    def level(self) -> Level:
        """The current state as a Level (boxes and player where they are now)."""
        return tiles_to_levels(self._state.tiles[:1])[0]

    def render(self):
        if self.render_mode == "ansi":
            return self.level.to_text()
        if self.render_mode == "rgb_array":
            from clm.domains.levels.render import tiles_to_rgb

            return tiles_to_rgb(self._state.tiles[0], cell=self.cell)
        return None


class SokobanVecEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` Sokoban levels of one size, stepped at once.

    Observations ``(N, 7, H, W)`` uint8 one-hot, kept up to date in place
    (only the cells that changed are rewritten). Same-step autoreset: when
    env ``i`` ends, ``obs[i]`` is already its new level's first observation
    and ``infos["final_obs"][i]`` (valid where ``infos["_final_obs"][i]``)
    its real last observation. ``infos["solved"]``: bool per env.

    ``copy=True`` (default) returns fresh arrays each step; ``copy=False``
    returns the internal buffers, which the next step overwrites (fastest,
    for callers that copy into their own storage at once).
    ``reset(options={"levels": [...]})`` starts given levels.
    """

    metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        source,
        num_envs: int,
        max_steps: int = MAX_STEPS,
        copy: bool = True,
        sequential: bool = False,
        seed: int | None = None,
    ):
        if num_envs < 1:
            raise UserError(f"num_envs must be at least 1, got {num_envs}")
        self.source = LevelSource(source, sequential=sequential)
        self.num_envs = num_envs
        self.copy = copy
        self.max_steps = max_steps
        h, w = (int(v) for v in self.source.shape)
        self._state = BatchState(num_envs, (h, w), max_steps)
        self._final_obs = np.zeros((num_envs, N_TILES, h, w), dtype=np.uint8)
        self.single_observation_space = spaces.Box(0, 1, (N_TILES, h, w), np.uint8)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self._all = np.arange(num_envs)
        self._started = False

    @property
    def shape(self) -> tuple[int, int]:
        return self._state.shape

    def set_source(self, source) -> None:
        """Draw future levels (on each env's next reset) from ``source``."""
        new = LevelSource(source)
        if tuple(new.shape) != self._state.shape:
            raise UserError(f"new levels are {tuple(new.shape)}; this environment holds {self._state.shape}")
        self.source = new

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a.copy() if self.copy else a

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        levels = (options or {}).get("levels")
        if levels is not None:
            tiles = levels_to_tiles(levels)
            if len(tiles) != self.num_envs:
                raise UserError(f"reset needs {self.num_envs} levels, got {len(tiles)}")
        else:
            tiles = self.source.draw(self._rng, self.num_envs)
        self._state.load(self._all, tiles)
        self._started = True
        return self._out(self._state.obs), {}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        s = self._state
        s.step(check_actions(actions, self.num_envs))
        done = s.terminated | s.truncated
        # Only rows that ended are written; with copy the rest stay zero.
        final = np.zeros_like(self._final_obs) if self.copy else self._final_obs
        idx = np.flatnonzero(done)
        if len(idx):
            s.load(idx, self.source.draw(self._rng, len(idx)), final_obs=final)
        terminated = s.terminated.copy()
        infos = {"final_obs": final, "_final_obs": done, "solved": terminated}
        return self._out(s.obs), s.reward.copy(), terminated, s.truncated.copy(), infos

    @property
    def levels(self) -> list[Level]:
        """The current states as Levels."""
        return tiles_to_levels(self._state.tiles)

    def state_dict(self) -> dict:
        """Everything a resumed run needs, as arrays and numbers (no pickle):
        the levels in play, the pool future levels come from (a sampler
        source cannot be saved and is given again by the caller), the
        random generator."""
        src = self.source
        return {"batch": self._state.state_dict(), "final_obs": self._final_obs.copy(),
                "rng": self._rng.bit_generator.state, "started": self._started,
                "pool": None if src.pool is None else src.pool.copy(), "sequential": src.sequential,
                "next": src._next}

    def load_state_dict(self, state: dict) -> None:
        self._state.load_state_dict(state["batch"])
        self._final_obs[...] = state["final_obs"]
        self._rng.bit_generator.state = state["rng"]
        self._started = bool(state["started"])
        if state["pool"] is not None:
            self.source = LevelSource(np.asarray(state["pool"], np.int8), sequential=bool(state["sequential"]))
            self.source._next = int(state["next"])

    def close_extras(self, **kwargs) -> None:
        pass
