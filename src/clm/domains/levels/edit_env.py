"""Editing Sokoban levels: edits as actions (PCGRL's "wide" representation),
goal-conditioned on a target cell of a QD grid (as controllable PCGRL).

The state is a level (a G sample, an archive elite or a corpus level) and a
target cell ``(pushes bin, wall-density bin)`` of a QD grid of ``bins``
cells. An action is an edit at a cell, or stop:

=========  ============  =====================================================
kind       name          what it does at cell p
=========  ============  =====================================================
0          ``wall``      wall <-> floor (inner cells only; floor must be empty)
1          ``player``    the player moves to p (no wall, no box)
2          ``add_pair``  a box on a goal at p (empty floor; at most
                         ``max_boxes`` boxes); a later ``move_box`` or
                         ``move_goal`` separates them
3          ``remove``    p holds a box: it goes, with the goal nearest to it;
                         p holds a goal: it goes, with the box nearest to it
                         (at least one pair stays)
4          ``move_box``  the box nearest to p moves to p (no wall, box, player)
5          ``move_goal`` the goal nearest to p moves to p (no wall, goal)
=========  ============  =====================================================

Action ``a < 6 * H * W`` is kind ``a // (H * W)`` at flat cell
``a % (H * W)``; action ``6 * H * W`` is stop. "Nearest" is Manhattan
distance, ties to the first cell in row-major order, so every edit is
deterministic.

Validity: every edit keeps the level structurally valid (``Level.problems``
empty: one player off walls and boxes, as many goals as boxes, at least one,
the player's area enclosed). An edit that would break this, or that changes
nothing, is refused: the level stays as it was and the step's reward is
``-invalid_penalty`` (default 0.05; documented, so that a learner is told,
and never a crash). Solvability is not structural: it is the judge's call.

Reward: the env does no training and calls no solver itself. The caller
passes ``score_fn(tiles, targets) -> (N,) float`` (the judge: solver,
realism, novelty, distance to the target cell); the reward of the step that
ends an episode (stop, or the ``horizon``-th edit, both ``terminated``: the
horizon is part of the task, never a truncation) adds ``score(final level)
- score(start level)``, so an episode's return is how much its edits
improved the level for its target, minus the refused edits' penalties.
Without ``score_fn`` only the penalties remain. The score of each start is
asked for at reset (a judge with a cache by layout judges an archive elite
for free).

Observation: float32 ``(10, H, W)``: the 7 one-hot tile planes, then the
target's pushes bin and wall bin scaled to [0, 1] and the share of the
horizon used, each as a constant plane (so a conv net sees them everywhere).

:class:`LevelEditVecEnv` edits ``num_envs`` levels at once with numpy
(same-step autoreset; ``infos["final_tiles"]`` holds the edited levels of the
episodes that ended); :class:`LevelEditEnv` is one level, for Gymnasium's
env checker and single-level use. :func:`apply_edits`, :func:`edit_mask`
and :func:`random_edits` are the batch operations both use, and what a
search with random edits (ACCEL's mutation) needs.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from clm.core.errors import UserError
from clm.domains.levels.level import (BOX, BOX_ON_GOAL, GOAL, N_TILES, PLAYER, PLAYER_ON_GOAL, WALL, Level,
                                      enclosed_mask, levels_to_tiles, tiles_to_levels, tiles_to_onehot)
from clm.domains.levels.sim import LevelSource

EDIT_KINDS = ("wall", "player", "add_pair", "remove", "move_box", "move_goal")
N_KINDS = len(EDIT_KINDS)
WALL_EDIT, PLAYER_EDIT, ADD_PAIR, REMOVE_PAIR, MOVE_BOX, MOVE_GOAL = range(N_KINDS)
OBS_CHANNELS = N_TILES + 3
INVALID_PENALTY = 0.05

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def n_edit_actions(shape: tuple[int, int]) -> int:
    """Edits at every cell plus stop."""
    return N_KINDS * shape[0] * shape[1] + 1


def _planes(tiles: np.ndarray):
    walls = tiles == WALL
    goals = (tiles == GOAL) | (tiles == BOX_ON_GOAL) | (tiles == PLAYER_ON_GOAL)
    boxes = (tiles == BOX) | (tiles == BOX_ON_GOAL)
    player = (tiles == PLAYER) | (tiles == PLAYER_ON_GOAL)
    return walls, goals, boxes, player


def _tiles(walls, goals, boxes, player) -> np.ndarray:
    t = (1 + goals.astype(np.int8) + 2 * boxes.astype(np.int8) + 4 * player.astype(np.int8)).astype(np.int8)
    t[walls] = WALL
    return t


def _inner(shape: tuple[int, int]) -> np.ndarray:
    inner = np.zeros(shape, bool)
    inner[1:-1, 1:-1] = True
    return inner


def edit_mask(tiles: np.ndarray, max_boxes: int = 4) -> np.ndarray:
    """(N, 6 * H * W + 1) bool: the edits whose cell conditions hold (see the
    module's table) for each of ``tiles`` (N, H, W), and stop (always True).
    The enclosure of the player's area is not checked here (it needs a flood
    fill per edit): :func:`apply_edits` refuses the rare edit that breaks it."""
    tiles = np.asarray(tiles)
    n, h, w = tiles.shape
    walls, goals, boxes, player = _planes(tiles)
    n_boxes = boxes.reshape(n, -1).sum(1)
    empty = ~walls & ~goals & ~boxes & ~player
    per_kind = np.stack([
        (walls | empty) & _inner((h, w)),
        ~walls & ~boxes & ~player,
        empty & (n_boxes < max_boxes)[:, None, None],
        (boxes | goals) & (n_boxes > 1)[:, None, None],
        ~walls & ~boxes & ~player & (n_boxes > 0)[:, None, None],
        ~walls & ~goals & (n_boxes > 0)[:, None, None],
    ], axis=1).reshape(n, -1)
    return np.concatenate([per_kind, np.ones((n, 1), bool)], axis=1)


def _nearest(plane: np.ndarray, r: np.ndarray, c: np.ndarray, exclude_at: bool) -> np.ndarray:
    """Flat index of the True cell of each (H, W) plane nearest (Manhattan) to (r, c);
    ties to the first in row-major order; -1 where there is none."""
    n, h, w = plane.shape
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    d = np.abs(rows - r[:, None, None]) + np.abs(cols - c[:, None, None])
    ok = plane.copy()
    if exclude_at:
        ok[np.arange(n), r, c] = False
    d = np.where(ok, d, h + w + 1).reshape(n, -1)
    best = d.argmin(1)
    return np.where(ok.reshape(n, -1).any(1), best, -1)


def apply_edits(tiles: np.ndarray, actions: np.ndarray, max_boxes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Apply one action to each of ``tiles`` (N, H, W) int8. Returns the new
    tiles and (N,) ``changed``: True where the edit was made; False where it
    was refused (the level is returned unchanged) or the action was stop."""
    tiles = np.asarray(tiles, dtype=np.int8)
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    n, h, w = tiles.shape
    if len(actions) != n:
        raise UserError(f"apply_edits got {len(actions)} actions for {n} levels")
    stop = N_KINDS * h * w
    if n and (actions.min() < 0 or actions.max() > stop):
        raise UserError(f"edit actions must lie in 0..{stop} (6 kinds x {h}x{w} cells, then stop), "
                        f"got {int(actions.min())}..{int(actions.max())}")
    mask = edit_mask(tiles, max_boxes)
    ok = mask[np.arange(n), actions] & (actions != stop)
    kind, cell = np.divmod(np.minimum(actions, stop - 1), h * w)
    r, c = np.divmod(cell, w)
    walls, goals, boxes, player = (p.copy() for p in _planes(tiles))

    def rows(k):
        return np.flatnonzero(ok & (kind == k))

    i = rows(WALL_EDIT)
    walls[i, r[i], c[i]] = ~walls[i, r[i], c[i]]
    i = rows(PLAYER_EDIT)
    player[i] = False
    player[i, r[i], c[i]] = True
    i = rows(ADD_PAIR)
    boxes[i, r[i], c[i]] = True
    goals[i, r[i], c[i]] = True
    i = rows(REMOVE_PAIR)
    if len(i):
        at_box = boxes[i, r[i], c[i]]
        # p holds a box: the box goes with its nearest goal; else the goal at p goes with its nearest box
        g = _nearest(goals[i], r[i], c[i], exclude_at=False)
        b = _nearest(boxes[i], r[i], c[i], exclude_at=False)
        flat_boxes, flat_goals = boxes.reshape(n, -1), goals.reshape(n, -1)
        flat_boxes[i, np.where(at_box, cell[i], b)] = False
        flat_goals[i, np.where(at_box, g, cell[i])] = False
    for k, plane in ((MOVE_BOX, boxes), (MOVE_GOAL, goals)):
        i = rows(k)
        if len(i):
            src = _nearest(plane[i], r[i], c[i], exclude_at=True)
            flat = plane.reshape(n, -1)
            flat[i, src] = False
            flat[i, cell[i]] = True
    out = _tiles(walls, goals, boxes, player)
    # the player's area must stay enclosed: opening a wall or moving the player may reach the edge
    check = np.flatnonzero(ok & ((kind == WALL_EDIT) | (kind == PLAYER_EDIT)))
    if len(check):
        bad = check[~enclosed_mask(out[check])]
        ok[bad] = False
    out[~ok] = tiles[~ok]
    return out, ok & (out.reshape(n, -1) != tiles.reshape(n, -1)).any(1)


def random_edits(tiles: np.ndarray, n_edits: np.ndarray | int, rng: np.random.Generator,
                 max_boxes: int = 4, log: list | None = None) -> np.ndarray:
    """ACCEL's mutation: each level of ``tiles`` (N, H, W) with ``n_edits`` (per
    level, or one count) edits, each drawn uniformly from the edits whose cell
    conditions hold (:func:`edit_mask`, stop excluded), one after the other.
    ``log``, if given, gets one list per level of the edits made (not those
    refused), each ``(kind name, row, column)``; the draws are the same with it."""
    tiles = np.asarray(tiles, dtype=np.int8).copy()
    n = len(tiles)
    w = tiles.shape[2] if tiles.ndim == 3 else 0
    n_edits = np.broadcast_to(np.asarray(n_edits, dtype=np.int64), (n,))
    made: list[list] = [[] for _ in range(n)]
    for k in range(int(n_edits.max(initial=0))):
        live = np.flatnonzero(n_edits > k)
        mask = edit_mask(tiles[live], max_boxes)[:, :-1]
        pick = np.argmax(rng.random(mask.shape) * mask, axis=1)  # uniform among the allowed edits
        tiles[live], changed = apply_edits(tiles[live], pick, max_boxes)
        if log is not None:
            for i, a in zip(live[changed], pick[changed]):
                kind, cell = divmod(int(a), tiles.shape[1] * w)
                made[i].append((EDIT_KINDS[kind], cell // w, cell % w))
    if log is not None:
        log.extend(made)
    return tiles


def edit_observation(tiles: np.ndarray, targets: np.ndarray, t: np.ndarray, horizon: int,
                     bins: tuple[int, int]) -> np.ndarray:
    """(N, 10, H, W) float32: one-hot tiles, the target bins scaled to [0, 1], t / horizon."""
    tiles = np.asarray(tiles)
    n, h, w = tiles.shape
    extra = np.stack([np.asarray(targets[:, 0], np.float32) / max(bins[0] - 1, 1),
                      np.asarray(targets[:, 1], np.float32) / max(bins[1] - 1, 1),
                      np.asarray(t, np.float32) / horizon], axis=1)
    planes = np.broadcast_to(extra[:, :, None, None], (n, 3, h, w))
    return np.concatenate([tiles_to_onehot(tiles), planes], axis=1).astype(np.float32)


class BadTarget(UserError, ValueError):
    """A target cell that is not a cell of the QD grid (or not a cell at all).

    A ``ValueError`` for code that calls the env (Gymnasium's convention for a bad
    argument) and a ``UserError`` with exit code 2 for the command line, so a
    target a person typed would be refused without a traceback. (No ``clm``
    command takes a target cell today: they come from ``reset``'s options and
    the searches' own samplers.)"""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


def check_targets(targets: np.ndarray, bins: tuple[int, int]) -> np.ndarray:
    """(N, 2) int target cells, or a :class:`BadTarget` naming the grid's range."""
    t = np.asarray(targets)
    if t.ndim != 2 or t.shape[1] != 2 or not np.issubdtype(t.dtype, np.integer):
        raise BadTarget(f"targets must be (N, 2) integer cells (pushes bin, wall bin) of the {bins[0]}x{bins[1]} "
                        f"grid, got shape {t.shape} {t.dtype}")
    bad = (t < 0) | (t >= np.asarray(bins)[None])
    if bad.any():
        row = int(np.flatnonzero(bad.any(1))[0])
        raise BadTarget(f"target cell {tuple(int(v) for v in t[row])} (row {row} of the targets) lies outside the "
                        f"{bins[0]}x{bins[1]} grid: pushes bin must be in 0..{bins[0] - 1} and wall bin in "
                        f"0..{bins[1] - 1}")
    return t.astype(np.int64)


def uniform_targets(rng: np.random.Generator, tiles: np.ndarray, bins: tuple[int, int]) -> np.ndarray:
    """The default target sampler: cells drawn uniformly from the grid."""
    return np.stack([rng.integers(bins[0], size=len(tiles)), rng.integers(bins[1], size=len(tiles))], axis=1)


class LevelEditVecEnv(gym.vector.VectorEnv):
    """``num_envs`` levels edited at once (same-step autoreset).

    ``source``: where start levels come from (a list of Levels, tiles, a file,
    or ``sampler(rng, n)``, as the Sokoban envs); ``set_source`` replaces it.
    ``target_fn(rng, tiles) -> (N, 2)`` picks each start's target cell
    (default: uniform over the grid). ``reset(options={"levels": [...],
    "targets": (N, 2)})`` starts given levels and targets.
    ``infos``: ``changed`` (the edit was made), ``refused`` (an edit was
    refused), and for the envs whose episode ended (``_final_obs``):
    ``final_obs``, ``final_tiles``, ``final_targets`` and ``start_tiles``.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, source, num_envs: int, bins: tuple[int, int], horizon: int = 4, max_boxes: int = 4,
                 score_fn: ScoreFn | None = None, target_fn=None, invalid_penalty: float = INVALID_PENALTY,
                 seed: int | None = None):
        if num_envs < 1 or horizon < 1 or max_boxes < 1:
            raise UserError(f"num_envs, horizon and max_boxes must be >= 1, got {num_envs}, {horizon}, {max_boxes}")
        if len(bins) != 2 or min(bins) < 1:
            raise UserError(f"bins must be two counts >= 1 (pushes bins, wall bins), got {bins}")
        if invalid_penalty < 0:
            raise UserError(f"invalid_penalty must be >= 0, got {invalid_penalty}")
        self.source = LevelSource(source)
        self.num_envs, self.horizon, self.max_boxes = num_envs, horizon, max_boxes
        self.bins = (int(bins[0]), int(bins[1]))
        self.score_fn, self.invalid_penalty = score_fn, float(invalid_penalty)
        self.target_fn = target_fn or (lambda rng, tiles: uniform_targets(rng, tiles, self.bins))
        h, w = (int(v) for v in self.source.shape)
        self.shape = (h, w)
        self.stop_action = N_KINDS * h * w
        self.single_observation_space = spaces.Box(0.0, 1.0, (OBS_CHANNELS, h, w), np.float32)
        self.single_action_space = spaces.Discrete(n_edit_actions((h, w)))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._rng = np.random.default_rng(seed)
        self._started = False

    def set_source(self, source) -> None:
        new = LevelSource(source)
        if tuple(new.shape) != self.shape:
            raise UserError(f"new levels are {tuple(new.shape)}; this environment edits {self.shape}")
        self.source = new

    def _score(self, tiles: np.ndarray, targets: np.ndarray) -> np.ndarray:
        if self.score_fn is None:
            return np.zeros(len(tiles))
        s = np.asarray(self.score_fn(tiles, targets), dtype=np.float64)
        if s.shape != (len(tiles),):
            raise UserError(f"score_fn returned shape {s.shape} for {len(tiles)} levels; it must return one score each")
        return s

    def _start(self, idx: np.ndarray, tiles: np.ndarray, targets: np.ndarray | None) -> None:
        if targets is None:
            targets = self.target_fn(self._rng, tiles)
        self._tiles[idx] = tiles
        self._start_tiles[idx] = tiles
        targets = check_targets(targets, self.bins)
        if len(targets) != len(idx):
            raise BadTarget(f"got {len(targets)} target cells for {len(idx)} levels: give one (pushes bin, wall bin) "
                            f"cell of the {self.bins[0]}x{self.bins[1]} grid per level")
        self._targets[idx] = targets
        self._t[idx] = 0
        self._start_score[idx] = self._score(tiles, self._targets[idx])

    def _obs(self) -> np.ndarray:
        return edit_observation(self._tiles, self._targets, self._t, self.horizon, self.bins)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        n, (h, w) = self.num_envs, self.shape
        self._tiles = np.zeros((n, h, w), np.int8)
        self._start_tiles = np.zeros((n, h, w), np.int8)
        self._targets = np.zeros((n, 2), np.int64)
        self._t = np.zeros(n, np.int64)
        self._start_score = np.zeros(n)
        options = options or {}
        levels = options.get("levels")
        if levels is not None:
            tiles = levels_to_tiles(levels) if isinstance(levels, (list, tuple)) else np.asarray(levels, np.int8)
            if tiles.shape != (n, h, w):
                raise UserError(f"reset needs {n} levels of {h}x{w}, got tiles of shape {tiles.shape}")
        else:
            tiles = self.source.draw(self._rng, n)
        self._start(np.arange(n), tiles, options.get("targets"))
        self._started = True
        return self._obs(), {}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        stop = actions == self.stop_action
        new, changed = apply_edits(self._tiles, actions, self.max_boxes)
        refused = ~changed & ~stop
        self._tiles = new
        self._t += 1
        reward = -self.invalid_penalty * refused
        # the horizon is part of the task (the score is paid there; the observation holds t / horizon),
        # so reaching it terminates the episode, as stop does: nothing is bootstrapped beyond it
        terminated = stop | (self._t >= self.horizon)
        truncated = np.zeros(self.num_envs, bool)
        done = terminated
        infos = {"changed": changed, "refused": refused}
        obs = self._obs()
        idx = np.flatnonzero(done)
        if len(idx):
            final = self._tiles[idx].copy()
            reward[idx] += self._score(final, self._targets[idx]) - self._start_score[idx]
            infos["final_obs"] = obs.copy()
            infos["_final_obs"] = done.copy()
            infos["final_tiles"] = self._tiles.copy()
            infos["final_targets"] = self._targets.copy()
            infos["start_tiles"] = self._start_tiles.copy()
            self._start(idx, self.source.draw(self._rng, len(idx)), None)
            obs = self._obs()
        return obs, reward.astype(np.float32), terminated, truncated, infos

    @property
    def levels(self) -> list[Level]:
        return tiles_to_levels(self._tiles)

    def close_extras(self, **kwargs) -> None:
        pass


class LevelEditEnv(gym.Env):
    """One level edited toward one target cell (:class:`LevelEditVecEnv` with one env)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, source, bins: tuple[int, int], horizon: int = 4, max_boxes: int = 4,
                 score_fn: ScoreFn | None = None, target_fn=None, invalid_penalty: float = INVALID_PENALTY,
                 render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise UserError(f"unknown render mode {render_mode!r}; choose 'ansi'")
        self.render_mode = render_mode
        self.vec = LevelEditVecEnv(source, 1, bins, horizon, max_boxes, score_fn, target_fn, invalid_penalty)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        if "level" in options:
            options["levels"] = [options.pop("level")]
        if "target" in options:
            options["targets"] = np.asarray([options.pop("target")])
        obs, _ = self.vec.reset(seed=seed, options=options)
        return obs[0], {"target": self.vec._targets[0].copy()}

    def step(self, action):
        obs, reward, term, trunc, infos = self.vec.step(np.asarray([action]))
        info = {"changed": bool(infos["changed"][0]), "refused": bool(infos["refused"][0])}
        if term[0] or trunc[0]:
            obs = infos["final_obs"]  # the edited level, not the next start
            info["final_tiles"] = infos["final_tiles"][0]
        return obs[0], float(reward[0]), bool(term[0]), bool(trunc[0]), info

    def render(self):
        if self.render_mode == "ansi":
            return self.vec.levels[0].to_text()
        return None
