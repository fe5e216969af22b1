"""Sokoban rules (as Boxoban / gym-sokoban) and batched simulators.

Rules: actions 0 up, 1 down, 2 left, 3 right. Walking into a box pushes it
when the cell behind it is floor or goal without a box; otherwise nothing
moves (the step still costs). Reward per step: -0.1, +1 for a box pushed
onto a goal, -1 for a box pushed off a goal, +10 when every box stands on a
goal (the episode then terminates). After ``max_steps`` (120) steps without
solving, the episode is truncated.

Three implementations of the same rules, checked against each other by the
tests:

* :class:`ReferenceSokoban`: plain Python on sets, one level, for checking;
* :class:`BatchState` + :func:`step_batch_numba`: N levels as flat tile-id
  arrays stepped by one compiled loop, updating the one-hot observation in
  place (only the up to three cells that changed);
* :class:`TorchSokobanBatch`: the same on torch tensors (any device), with
  array operations only.

The state of a batch is its tile ids (``TILE_CHARS`` order), so a cell's
tile changes by simple arithmetic: player leaving -4, player entering +4,
box leaving -2, box entering +2 (see :mod:`clm.domains.levels.level`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np
import torch

from clm.core.errors import UserError
from clm.domains.levels.io import read_levels
from clm.domains.levels.level import (
    BOX,
    BOX_ON_GOAL,
    GOAL,
    N_TILES,
    PLAYER,
    PLAYER_ON_GOAL,
    WALL,
    Level,
    levels_to_tiles,
)

#: Action ids and their (row, column) moves.
ACTION_NAMES = ("up", "down", "left", "right")
ACTION_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))
N_ACTIONS = 4
STEP_REWARD = -0.1
BOX_ON_GOAL_REWARD = 1.0
BOX_OFF_GOAL_REWARD = -1.0
SOLVED_REWARD = 10.0
MAX_STEPS = 120

_DR = np.array([d[0] for d in ACTION_DELTAS], dtype=np.int64)
_DC = np.array([d[1] for d in ACTION_DELTAS], dtype=np.int64)


# ----------------------------------------------------------------- reference
class ReferenceSokoban:
    """One level, plain Python sets: the readable statement of the rules,
    used to check the fast simulators."""

    def __init__(self, level: Level, max_steps: int = MAX_STEPS):
        self.h, self.w = level.shape
        self.walls = {tuple(p) for p in np.argwhere(level.walls).tolist()}
        self.goals = {tuple(p) for p in np.argwhere(level.goals).tolist()}
        self.boxes = {tuple(p) for p in np.argwhere(level.boxes).tolist()}
        self.player = level.player
        self.max_steps = max_steps
        self.steps = 0

    def _blocked(self, cell: tuple[int, int]) -> bool:
        r, c = cell
        return not (0 <= r < self.h and 0 <= c < self.w) or cell in self.walls

    def step(self, action: int) -> tuple[float, bool, bool]:
        """Apply one action; returns (reward, terminated, truncated)."""
        dr, dc = ACTION_DELTAS[action]
        r, c = self.player
        ahead = (r + dr, c + dc)
        beyond = (r + 2 * dr, c + 2 * dc)
        reward = STEP_REWARD
        if not self._blocked(ahead):
            if ahead in self.boxes:
                if not self._blocked(beyond) and beyond not in self.boxes:
                    self.boxes.remove(ahead)
                    self.boxes.add(beyond)
                    self.player = ahead
                    reward += BOX_ON_GOAL_REWARD * (beyond in self.goals) + BOX_OFF_GOAL_REWARD * (ahead in self.goals)
            else:
                self.player = ahead
        self.steps += 1
        terminated = self.boxes <= self.goals
        if terminated:
            reward += SOLVED_REWARD
        truncated = not terminated and self.steps >= self.max_steps
        return reward, terminated, truncated

    def tiles(self) -> np.ndarray:
        t = np.ones((self.h, self.w), dtype=np.int8)
        for p in self.goals:
            t[p] = GOAL
        for p in self.boxes:
            t[p] += 2
        t[self.player] += 4
        for p in self.walls:
            t[p] = WALL
        return t


# --------------------------------------------------------------- level source
class LevelSource:
    """Where new levels come from on each reset: a fixed pool (a list of
    Levels, or a Boxoban file / folder) or a ``sampler(rng, n) -> list[Level]``
    (e.g. a generator's sampler).

    ``draw(rng, n)`` returns ``(n, H, W)`` int8 tile ids. Pools are drawn
    uniformly at random, or in order (wrapping) with ``sequential=True``.
    """

    def __init__(self, source, sequential: bool = False):
        self.sampler: Callable | None = None
        self.pool: np.ndarray | None = None
        self.sequential = sequential
        self._next = 0
        if isinstance(source, LevelSource):
            self.sampler, self.pool, self.shape = source.sampler, source.pool, source.shape
            return
        if isinstance(source, (str, Path)):
            source = read_levels(source)
        if callable(source):
            self.sampler = source
            probe = self._sample(np.random.default_rng(0), 1)
            self.shape = probe.shape[1:]
        elif isinstance(source, Sequence) or isinstance(source, np.ndarray):
            if len(source) == 0:
                raise UserError("the level source is empty: give at least one level")
            self.pool = levels_to_tiles(list(source)) if isinstance(source[0], Level) else np.asarray(source, np.int8)
            self.shape = self.pool.shape[1:]
        else:
            raise UserError(
                f"unknown level source {type(source).__name__}: give a list of Levels, a file or folder path, "
                f"or a sampler(rng, n) -> list[Level]"
            )
        if self.pool is not None and self.pool.ndim != 3:
            raise UserError(f"level tiles must have shape (N, H, W), got {self.pool.shape}")

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        levels = self.sampler(rng, n)
        if len(levels) != n:
            raise UserError(f"the level sampler returned {len(levels)} levels when asked for {n}")
        return levels_to_tiles(levels)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.sampler is not None:
            tiles = self._sample(rng, n)
            if tiles.shape[1:] != tuple(self.shape):
                raise UserError(f"the sampler gave {tiles.shape[1:]} levels; this environment holds {self.shape}")
            return tiles
        if self.sequential:
            idx = (self._next + np.arange(n)) % len(self.pool)
            self._next = int((self._next + n) % len(self.pool))
        else:
            idx = rng.integers(0, len(self.pool), size=n)
        return self.pool[idx]

    def __len__(self) -> int:
        return 0 if self.pool is None else len(self.pool)


# -------------------------------------------------------------- numba batch
@numba.njit(cache=True, nogil=True)
def step_batch_numba(tiles, obs, player, steps, on_goal, n_boxes, actions, width, max_steps, reward, terminated, truncated):
    """Step every level of a batch once, in place.

    tiles (N, HW) int8; obs (N, 7, HW) uint8 one-hot of tiles; player (N,)
    flat cell index; steps, on_goal, n_boxes (N,) int; actions (N,) int.
    Writes reward (float32), terminated, truncated (bool). Returns -1, or
    the index of an action outside 0..3 (then nothing has changed).
    """
    n = tiles.shape[0]
    hw = tiles.shape[1]
    height = hw // width
    for i in range(n):
        if actions[i] < 0 or actions[i] > 3:
            return i
    for i in range(n):
        a = actions[i]
        dr = 0
        dc = 0
        if a == 0:
            dr = -1
        elif a == 1:
            dr = 1
        elif a == 2:
            dc = -1
        else:
            dc = 1
        p = player[i]
        r = p // width
        c = p - r * width
        rew = np.float32(-0.1)
        r1 = r + dr
        c1 = c + dc
        if 0 <= r1 < height and 0 <= c1 < width:
            q = r1 * width + c1
            t1 = tiles[i, q]
            moved = False
            if t1 == 1 or t1 == 2:  # floor or goal: walk
                moved = True
            elif t1 == 3 or t1 == 4:  # box: push if the cell behind is free
                r2 = r1 + dr
                c2 = c1 + dc
                if 0 <= r2 < height and 0 <= c2 < width:
                    s = r2 * width + c2
                    t2 = tiles[i, s]
                    if t2 == 1 or t2 == 2:
                        moved = True
                        nt2 = t2 + 2
                        tiles[i, s] = nt2
                        obs[i, t2, s] = 0
                        obs[i, nt2, s] = 1
                        if t2 == 2 and t1 == 3:
                            rew += np.float32(1.0)
                            on_goal[i] += 1
                        elif t2 == 1 and t1 == 4:
                            rew -= np.float32(1.0)
                            on_goal[i] -= 1
                        t1 -= 2  # the box leaves the cell the player enters
            if moved:
                tp = tiles[i, p]
                ntp = tp - 4
                tiles[i, p] = ntp
                obs[i, tp, p] = 0
                obs[i, ntp, p] = 1
                old1 = tiles[i, q]
                nt1 = t1 + 4
                tiles[i, q] = nt1
                obs[i, old1, q] = 0
                obs[i, nt1, q] = 1
                player[i] = q
        steps[i] += 1
        done = on_goal[i] == n_boxes[i]
        if done:
            rew += np.float32(10.0)
        terminated[i] = done
        truncated[i] = (not done) and steps[i] >= max_steps
        reward[i] = rew
    return -1


@numba.njit(cache=True, nogil=True)
def load_rows_numba(tiles, obs, player, steps, on_goal, n_boxes, idx, new_tiles, final_obs, save_final):
    """Load new levels (k, HW) into rows ``idx`` of a batch, rebuilding
    those rows' one-hot; optionally first copy their obs into final_obs.
    Returns the index (in new_tiles) of a level without exactly one player,
    or -1 when all are fine (nothing is loaded then from that level on)."""
    hw = tiles.shape[1]
    for j in range(idx.shape[0]):
        i = idx[j]
        if save_final:
            final_obs[i, :, :] = obs[i, :, :]
        n_player = 0
        for q in range(hw):
            t = new_tiles[j, q]
            if t == 5 or t == 6:
                n_player += 1
        if n_player != 1:
            return j
        obs[i, :, :] = 0
        boxes = 0
        good = 0
        for q in range(hw):
            t = new_tiles[j, q]
            tiles[i, q] = t
            obs[i, t, q] = 1
            if t == 5 or t == 6:
                player[i] = q
            elif t == 3:
                boxes += 1
            elif t == 4:
                boxes += 1
                good += 1
        steps[i] = 0
        on_goal[i] = good
        n_boxes[i] = boxes
    return -1


class BatchState:
    """The state of N levels of one shape, as flat arrays, with the one-hot
    observation kept up to date in place.

    ``obs`` is ``(N, 7, H, W)`` uint8; ``tiles`` is ``(N, H, W)`` int8 (views
    of the same memory as the flat arrays the kernel uses).
    """

    def __init__(self, num_envs: int, shape: tuple[int, int], max_steps: int = MAX_STEPS):
        self.num_envs = num_envs
        self.shape = (int(shape[0]), int(shape[1]))
        h, w = self.shape
        self.max_steps = max_steps
        self.tiles_flat = np.zeros((num_envs, h * w), dtype=np.int8)
        self.obs_flat = np.zeros((num_envs, N_TILES, h * w), dtype=np.uint8)
        self.player = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.on_goal = np.zeros(num_envs, dtype=np.int64)
        self.n_boxes = np.zeros(num_envs, dtype=np.int64)
        self.reward = np.zeros(num_envs, dtype=np.float32)
        self.terminated = np.zeros(num_envs, dtype=bool)
        self.truncated = np.zeros(num_envs, dtype=bool)
        # Shaped views of the flat buffers (same memory, made once).
        self.obs = self.obs_flat.reshape(num_envs, N_TILES, h, w)
        self.tiles = self.tiles_flat.reshape(num_envs, h, w)
        self._no_final = np.zeros((1, N_TILES, 1), dtype=np.uint8)

    _ARRAYS = ("tiles_flat", "obs_flat", "player", "steps", "on_goal", "n_boxes", "reward", "terminated",
               "truncated")

    def state_dict(self) -> dict:
        """The batch as arrays (checkpoints hold no pickles)."""
        return {k: getattr(self, k).copy() for k in self._ARRAYS}

    def load_state_dict(self, state: dict) -> None:
        """Copy a :meth:`state_dict` into this batch's buffers (same size), in place."""
        for k in self._ARRAYS:
            mine = getattr(self, k)
            if np.shape(state[k]) != mine.shape:
                raise UserError(f"the saved Sokoban batch has {k} of shape {np.shape(state[k])}; this one holds "
                                f"{mine.shape}: resume with the num_envs and level size the run started with")
            mine[...] = state[k]

    def load(self, idx: np.ndarray, tiles: np.ndarray, final_obs: np.ndarray | None = None) -> None:
        """Start levels ``tiles`` (k, H, W) in the rows ``idx``; with
        ``final_obs`` ((N, 7, H, W)), first copy those rows' current
        observations there."""
        k = len(idx)
        if tuple(tiles.shape[1:]) != self.shape:
            raise UserError(f"levels of size {tuple(tiles.shape[1:])} cannot join a batch of size {self.shape}")
        flat = np.ascontiguousarray(tiles.reshape(k, -1), dtype=np.int8)
        final_flat = self._no_final if final_obs is None else final_obs.reshape(self.num_envs, N_TILES, -1)
        bad = load_rows_numba(
            self.tiles_flat, self.obs_flat, self.player, self.steps, self.on_goal, self.n_boxes,
            np.asarray(idx, dtype=np.int64), flat, final_flat, final_obs is not None,
        )  # fmt: skip
        if bad >= 0:
            raise UserError(f"level {bad} of those loaded does not have exactly one player; give valid levels")

    def step(self, actions: np.ndarray) -> None:
        """Advance every row by its action; results in reward/terminated/truncated."""
        bad = step_batch_numba(
            self.tiles_flat, self.obs_flat, self.player, self.steps, self.on_goal, self.n_boxes, actions,
            self.shape[1], self.max_steps, self.reward, self.terminated, self.truncated,
        )  # fmt: skip
        if bad >= 0:
            raise ValueError(f"actions must lie in 0..3 (up, down, left, right); env {bad} got {actions[bad]}")


def check_actions(actions, num_envs: int) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape != (num_envs,):
        raise ValueError(f"expected {num_envs} actions, got shape {a.shape}")
    if a.dtype != np.int64:
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers 0..3, got dtype {a.dtype}")
        a = a.astype(np.int64)
    return a  # the range 0..3 is checked by the step kernel


# -------------------------------------------------------------- torch batch
class TorchSokobanBatch:
    """N levels stepped at once with torch tensor operations on any device
    (the same rules as :class:`ReferenceSokoban`), with same-step autoreset:
    levels that end are replaced at once from the source.

    ``reset()`` returns obs ``(N, 7, H, W)`` uint8; ``step(actions)`` returns
    ``(obs, reward, terminated, truncated, info)`` as tensors, with
    ``info["final_obs"]`` (rows valid where ``info["_final_obs"]``) and
    ``info["solved"]``. The returned obs tensor is updated in place by the
    next step: clone it to keep it.
    """

    def __init__(self, source, num_envs: int, device="cpu", max_steps: int = MAX_STEPS, seed: int | None = None):
        self.torch = torch
        self.device = torch.device(device)
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.source = LevelSource(source)
        self.shape = tuple(int(v) for v in self.source.shape)
        self.rng = np.random.default_rng(seed)
        h, w = self.shape
        n, hw, dev = num_envs, h * w, self.device
        self.tiles = torch.zeros((n, hw), dtype=torch.int64, device=dev)
        self.obs_flat = torch.zeros((n, N_TILES * hw), dtype=torch.uint8, device=dev)
        self.final_obs = torch.zeros((n, N_TILES, h, w), dtype=torch.uint8, device=dev)
        self.player = torch.zeros(n, dtype=torch.int64, device=dev)
        self.steps = torch.zeros(n, dtype=torch.int64, device=dev)
        self.on_goal = torch.zeros(n, dtype=torch.int64, device=dev)
        self.n_boxes = torch.zeros(n, dtype=torch.int64, device=dev)
        self._dr = torch.tensor(_DR, device=dev)
        self._dc = torch.tensor(_DC, device=dev)
        self._rows = torch.arange(n, device=dev)

    @property
    def obs(self):
        return self.obs_flat.view(self.num_envs, N_TILES, *self.shape)

    def set_source(self, source) -> None:
        """Draw future levels from ``source`` (same level size)."""
        new = LevelSource(source)
        if tuple(new.shape) != self.shape:
            raise UserError(f"new levels are {tuple(new.shape)}; this batch holds {self.shape}")
        self.source = new

    def _load(self, idx, tiles: np.ndarray) -> None:
        torch = self.torch
        k = len(idx)
        flat = torch.as_tensor(tiles.reshape(k, -1).astype(np.int64), device=self.device)
        is_player = (flat == PLAYER) | (flat == PLAYER_ON_GOAL)
        if (is_player.sum(1) != 1).any():
            raise UserError("a level without exactly one player cannot be played; give valid levels")
        self.tiles[idx] = flat
        onehot = flat[:, None, :] == torch.arange(N_TILES, device=self.device)[None, :, None]
        self.obs_flat[idx] = onehot.reshape(k, -1).to(torch.uint8)
        self.player[idx] = is_player.to(torch.int64).argmax(1)
        self.steps[idx] = 0
        self.on_goal[idx] = (flat == BOX_ON_GOAL).sum(1)
        self.n_boxes[idx] = ((flat == BOX) | (flat == BOX_ON_GOAL)).sum(1)

    def reset(self, seed: int | None = None, levels: Sequence[Level] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        tiles = levels_to_tiles(levels) if levels is not None else self.source.draw(self.rng, self.num_envs)
        if len(tiles) != self.num_envs:
            raise UserError(f"reset needs {self.num_envs} levels, got {len(tiles)}")
        self._load(self._rows, tiles)
        return self.obs

    def _flip(self, cell, old, new) -> None:
        # One-hot update of one cell per row: clear the old tile's channel,
        # set the new one (a no-op when old == new).
        hw = self.shape[0] * self.shape[1]
        self.obs_flat.scatter_(1, (old * hw + cell)[:, None], 0)
        self.obs_flat.scatter_(1, (new * hw + cell)[:, None], 1)

    def step(self, actions):
        torch = self.torch
        h, w = self.shape
        a = torch.as_tensor(actions, device=self.device).long()
        if a.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {tuple(a.shape)}")
        dr, dc = self._dr[a], self._dc[a]
        p = self.player
        r, c = p // w, p % w
        r1, c1 = r + dr, c + dc
        r2, c2 = r1 + dr, c1 + dc
        in1 = (r1 >= 0) & (r1 < h) & (c1 >= 0) & (c1 < w)
        in2 = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        q = r1.clamp(0, h - 1) * w + c1.clamp(0, w - 1)
        s = r2.clamp(0, h - 1) * w + c2.clamp(0, w - 1)
        tp = self.tiles.gather(1, p[:, None])[:, 0]
        t1 = self.tiles.gather(1, q[:, None])[:, 0]
        t2 = self.tiles.gather(1, s[:, None])[:, 0]
        walk = in1 & ((t1 == 1) | (t1 == GOAL))
        push = in1 & in2 & ((t1 == BOX) | (t1 == BOX_ON_GOAL)) & ((t2 == 1) | (t2 == GOAL))
        move = walk | push
        onto = push & (t1 == BOX) & (t2 == GOAL)
        off = push & (t1 == BOX_ON_GOAL) & (t2 == 1)
        # New tiles; rows that do not move write back what they read.
        ntp = torch.where(move, tp - 4, tp)
        nt2 = torch.where(push, t2 + 2, t2)
        nt1 = torch.where(push, t1 + 2, torch.where(walk, t1 + 4, t1))
        for cell, old, new in ((p, tp, ntp), (s, t2, nt2), (q, t1, nt1)):
            self.tiles.scatter_(1, cell[:, None], new[:, None])
            self._flip(cell, old, new)
        self.player = torch.where(move, q, p)
        self.on_goal += onto.long() - off.long()
        self.steps += 1
        terminated = self.on_goal == self.n_boxes
        truncated = ~terminated & (self.steps >= self.max_steps)
        reward = (
            STEP_REWARD + BOX_ON_GOAL_REWARD * onto.float() + BOX_OFF_GOAL_REWARD * off.float()
            + SOLVED_REWARD * terminated.float()
        )  # fmt: skip
        done = terminated | truncated
        idx = done.nonzero()[:, 0]
        if len(idx):
            self.final_obs[idx] = self.obs[idx]
            self._load(idx, self.source.draw(self.rng, len(idx)))
        info = {"final_obs": self.final_obs, "_final_obs": done, "solved": terminated}
        return self.obs, reward.float(), terminated, truncated, info
