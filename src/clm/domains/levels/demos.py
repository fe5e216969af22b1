"""Demonstrations from the exact solver: each level's push-optimal solution
played through the simulator, as transitions an agent can learn from (Deep
Q-learning from Demonstrations, Hester et al. 2018).

Sokoban's rules look the same under the eight symmetries of the square (a
mirrored or rotated level is solved by the mirrored or rotated moves), so
``symmetries=True`` multiplies the demonstrations by eight at no solver cost,
for square levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clm.domains.levels.level import N_TILES, Level, levels_to_tiles
from clm.domains.levels.sim import MAX_STEPS, BatchState
from clm.domains.levels.solver import solve_level

__all__ = ["Demonstrations", "solver_demonstrations", "transform_tiles", "SYMMETRIES"]

_MOVE_TO_ACTION = {"u": 0, "d": 1, "l": 2, "r": 3}

#: The eight symmetries of the square as (transpose, flip rows, flip columns),
#: applied in that order; the identity first.
SYMMETRIES = tuple((t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True))


@dataclass
class Demonstrations:
    """Transitions of solved episodes, in episode order.

    ``obs``/``next_obs``: (N, 7, H, W) uint8 one-hot; ``actions`` (N,) int64;
    ``rewards`` (N,) float32; ``terminated`` (N,) bool (the solving step);
    ``episode_end`` (N,) bool (the last step of each episode);
    ``levels_solved`` / ``levels_skipped``: how many levels gave an episode
    and how many did not (unsolved within the limit, or longer than
    ``max_steps`` moves).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    levels_solved: int = 0
    levels_skipped: int = 0

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_end.sum())


def transform_tiles(tiles: np.ndarray, sym: tuple[bool, bool, bool]) -> np.ndarray:
    """(N, H, W) tiles under one of :data:`SYMMETRIES`."""
    transpose, flip_rows, flip_cols = sym
    out = np.swapaxes(tiles, 1, 2) if transpose else tiles
    if flip_rows:
        out = out[:, ::-1, :]
    if flip_cols:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def transform_actions(actions: np.ndarray, sym: tuple[bool, bool, bool]) -> np.ndarray:
    """Actions (0 up, 1 down, 2 left, 3 right) under the same symmetry as
    :func:`transform_tiles`: a transpose swaps the row and column axes, a
    row flip swaps up and down, a column flip swaps left and right."""
    transpose, flip_rows, flip_cols = sym
    a = np.asarray(actions, dtype=np.int64)
    if transpose:
        a = np.array([2, 3, 0, 1], dtype=np.int64)[a]
    if flip_rows:
        a = np.array([1, 0, 2, 3], dtype=np.int64)[a]
    if flip_cols:
        a = np.array([0, 1, 3, 2], dtype=np.int64)[a]
    return a


def _play(tiles: np.ndarray, action_lists: list[np.ndarray], max_steps: int) -> Demonstrations:
    """Play each level's actions (all levels at once, one simulator row each)."""
    n = len(tiles)
    h, w = tiles.shape[1:]
    state = BatchState(n, (h, w), max_steps)
    state.load(np.arange(n), tiles)
    lengths = np.array([len(a) for a in action_lists], dtype=np.int64)
    total = int(lengths.sum())
    obs = np.zeros((total, N_TILES, h, w), np.uint8)
    next_obs = np.zeros_like(obs)
    actions = np.zeros(total, np.int64)
    rewards = np.zeros(total, np.float32)
    terminated = np.zeros(total, bool)
    # Transitions are stored level by level: level i's step t lands at start[i] + t.
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    padded = np.zeros((n, int(lengths.max(initial=0))), np.int64)
    for i, a in enumerate(action_lists):
        padded[i, : len(a)] = a
    for t in range(padded.shape[1]):
        rows = np.flatnonzero(lengths > t)
        slots = start[rows] + t
        obs[slots] = state.obs[rows]
        step_actions = np.where(lengths > t, padded[:, t], 0)
        state.step(step_actions)  # finished rows move too; their later steps are never read
        next_obs[slots] = state.obs[rows]
        actions[slots] = padded[rows, t]
        rewards[slots] = state.reward[rows]
        terminated[slots] = state.terminated[rows]
    episode_end = np.zeros(total, bool)
    episode_end[start + lengths - 1] = True
    if not terminated[episode_end].all():
        raise AssertionError("a solver solution did not solve its level in the simulator")
    return Demonstrations(obs, actions, rewards, next_obs, terminated, episode_end)


def solver_demonstrations(levels: Sequence[Level], time_limit: float = 1.0, max_steps: int = MAX_STEPS,
                          symmetries: bool = False) -> Demonstrations:
    """Solve each level push-optimally and play the solution.

    Levels the solver does not solve within ``time_limit`` seconds, or whose
    solution is longer than ``max_steps`` moves (an agent's episode would be
    truncated first), give no episode. ``symmetries=True`` (square levels)
    adds each solution under the seven other symmetries of the square.
    """
    levels = list(levels)
    kept, moves = [], []
    for lv in levels:
        res = solve_level(lv, time_limit=time_limit)
        if res.solved and 0 < res.n_moves <= max_steps:
            kept.append(lv)
            moves.append(np.array([_MOVE_TO_ACTION[m] for m in res.moves.lower()], dtype=np.int64))
    skipped = len(levels) - len(kept)
    if not kept:
        h, w = levels[0].shape if levels else (0, 0)
        empty = np.zeros((0, N_TILES, h, w), np.uint8)
        return Demonstrations(empty, np.zeros(0, np.int64), np.zeros(0, np.float32), empty.copy(),
                              np.zeros(0, bool), np.zeros(0, bool), 0, skipped)
    tiles = levels_to_tiles(kept)
    square = tiles.shape[1] == tiles.shape[2]
    syms = SYMMETRIES if symmetries and square else SYMMETRIES[:1]
    parts = [_play(transform_tiles(tiles, s), [transform_actions(m, s) for m in moves], max_steps) for s in syms]
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    return Demonstrations(cat("obs"), cat("actions"), cat("rewards"), cat("next_obs"), cat("terminated"),
                          cat("episode_end"), len(kept), skipped)
