"""Classic Sokoban level generator, in the manner of Boxoban's own levels.

1. Room topology: a wall-filled grid inside which a random walker carves
   floor, stamping a small shape (bar, block, corner) at each step and
   turning now and then.
2. Goals and a start: ``n_boxes`` goals on random floor cells, boxes placed
   on them (the solved state), the player on a random free floor cell.
3. Reverse play: the player walks at random and, when a box is right behind
   it, sometimes *pulls* it along. Every state reached this way can be played
   back forwards, so it is solvable by construction. A state is scored by
   ``box swaps x total box displacement`` (how often the pulled box changed,
   times the summed Manhattan distance of boxes from their goals), as in
   Racaniere et al. (2017) / gym-sokoban; the best state over a few reverse
   runs becomes the level.
4. Check: the exact solver must solve it with at least ``min_pushes`` pushes
   (and no box may start on a goal unless ``allow_box_on_goal``). Rooms that
   fail are thrown away and a new one is drawn.

Carving and reverse play are compiled with numba. All randomness comes from
the ``numpy.random.Generator`` passed in, so a seed gives the same levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit

from clm.core.errors import UserError
from clm.domains.levels.level import Level
from clm.domains.levels.solver import solve_arrays, solve_level

__all__ = ["generate_level", "generate_levels", "LevelSampler", "GeneratorFailed"]


class GeneratorFailed(UserError):
    """No acceptable level was found within ``max_tries`` rooms."""


# Shapes stamped by the carving walker, as (row, col) offsets around it.
_SHAPES = np.array([
    [[0, 0], [0, 0], [0, 0], [0, 0]],      # one cell
    [[0, -1], [0, 0], [0, 1], [0, 1]],     # horizontal bar of 3
    [[-1, 0], [0, 0], [1, 0], [1, 0]],     # vertical bar of 3
    [[0, 0], [0, 1], [1, 0], [1, 1]],      # 2x2 block
    [[0, 0], [0, -1], [1, 0], [1, 0]],     # corner
    [[0, 0], [0, 1], [1, 0], [1, 0]],      # corner, mirrored
], np.int64)
_DR = np.array([-1, 1, 0, 0], np.int64)
_DC = np.array([0, 0, -1, 1], np.int64)


@njit(cache=True)
def _carve(walls, walk_steps, turn_prob, min_floor):
    """Carve floor into ``walls`` (all True on entry) by a random walk."""
    h, w = walls.shape
    r = np.random.randint(1, h - 1)
    c = np.random.randint(1, w - 1)
    d = np.random.randint(4)
    n_floor = 0
    step = 0
    while step < walk_steps or n_floor < min_floor:
        shape = _SHAPES[np.random.randint(_SHAPES.shape[0])]
        for k in range(shape.shape[0]):
            rr = r + shape[k, 0]
            cc = c + shape[k, 1]
            if 1 <= rr < h - 1 and 1 <= cc < w - 1 and walls[rr, cc]:
                walls[rr, cc] = False
                n_floor += 1
        if np.random.random() < turn_prob:
            d = np.random.randint(4)
        r = min(max(r + _DR[d], 1), h - 2)
        c = min(max(c + _DC[d], 1), w - 2)
        step += 1
        if step > 50 * (walk_steps + min_floor):  # interior too small: give up
            break
    return n_floor


@njit(cache=True)
def _reverse_play(seed, walls, n_boxes, walk_steps, turn_prob, n_runs, run_steps, pull_prob,
                  allow_on_goal, goals_out, run_scores, run_players, run_boxes):
    """Carve a room, place goals (into goals_out) and run reverse play n_runs
    times; for each run write its best-scored state (score 0 if none) into
    run_scores / run_players / run_boxes (box cells). Returns False when the
    carved room is too small."""
    np.random.seed(seed)
    h, w = walls.shape
    walls[:, :] = True
    n_floor = _carve(walls, walk_steps, turn_prob, 2 * n_boxes + 2)
    run_scores[:] = 0
    run_players[:] = -1
    if n_floor < n_boxes + 2:
        return False
    flat_walls = walls.ravel()
    floor = np.flatnonzero(~flat_walls)
    perm = np.random.permutation(floor.shape[0])
    goal_cells = floor[perm[:n_boxes]]
    ncells = h * w
    is_goal = np.zeros(ncells, np.bool_)
    for k in range(n_boxes):
        is_goal[goal_cells[k]] = True
    offs = np.array([-w, w, -1, 1])

    box_at = np.full(ncells, -1, np.int64)  # box id per cell
    box_pos = np.empty(n_boxes, np.int64)
    for run in range(n_runs):
        best_score = 0
        box_at[:] = -1
        for k in range(n_boxes):
            box_pos[k] = goal_cells[k]
            box_at[goal_cells[k]] = k
        # Start the player on a free floor cell.
        player = -1
        for _ in range(100):
            cand = floor[np.random.randint(floor.shape[0])]
            if box_at[cand] < 0:
                player = cand
                break
        if player < 0:
            continue
        displacement = 0
        on_goal = n_boxes
        swaps = 0
        last = -1
        for _ in range(run_steps):
            d = np.random.randint(4)
            nxt = player + offs[d]
            if flat_walls[nxt] or box_at[nxt] >= 0:
                continue
            behind = player - offs[d]
            k = box_at[behind]
            if k >= 0 and np.random.random() < pull_prob:
                # Pull box k from `behind` onto the player's cell.
                old = box_pos[k]
                g = goal_cells[k]
                displacement -= abs(old // w - g // w) + abs(old % w - g % w)
                displacement += abs(player // w - g // w) + abs(player % w - g % w)
                on_goal += (1 if is_goal[player] else 0) - (1 if is_goal[old] else 0)
                box_at[old] = -1
                box_at[player] = k
                box_pos[k] = player
                if k != last:
                    swaps += 1
                    last = k
            player = nxt
            score = swaps * displacement
            if on_goal > 0 and not allow_on_goal:
                score = 0
            if score > best_score:
                best_score = score
                run_scores[run] = score
                run_players[run] = player
                run_boxes[run, :] = box_pos
    goals_out[:, :] = False
    for k in range(n_boxes):
        goals_out[goal_cells[k] // w, goal_cells[k] % w] = True
    return True


def _check_request(size: tuple[int, int], n_boxes: int) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(x) for x in size)
    if h < 3 or w < 3:
        raise UserError(f"level size {h}x{w} is too small: it needs at least 3x3 (a wall ring around floor)")
    if n_boxes < 1:
        raise UserError(f"--boxes must be at least 1, got {n_boxes}")
    interior = (h - 2) * (w - 2)
    # Boxes, their goals and the player need room, and a box needs a free
    # cell to be pulled into; below this no level can be made.
    if 2 * n_boxes + 2 > interior:
        raise UserError(
            f"{n_boxes} boxes do not fit a {h}x{w} level: its interior has {interior} cells and needs at "
            f"least {2 * n_boxes + 2} (boxes, goals, player and room to move); use fewer boxes or a larger size"
        )
    return h, w


def generate_level(rng: np.random.Generator, size: int | tuple[int, int] = (10, 10), n_boxes: int = 4,
                   walk_steps: int | None = None, turn_prob: float = 0.35, n_runs: int = 8,
                   run_steps: int | None = None, pull_prob: float = 0.8, min_pushes: int = 6,
                   allow_box_on_goal: bool = False, candidates: int = 1, max_tries: int = 200,
                   solver_node_limit: int = 300_000, solver_time_limit: float = 60.0,
                   name: str = "") -> Level:
    """One solvable level, verified by the exact solver.

    size: (H, W) or an int for a square; walk_steps: carving steps (default
    2 * (H + W): about 31 floor cells on 10x10, as in Boxoban); n_runs /
    run_steps: reverse-play runs and their length (default 40 * (H + W);
    the best-scored state over all runs is kept); pull_prob: chance of pulling a box
    that is behind the player; min_pushes: least optimal pushes accepted;
    candidates: how many of the best-scored run states the solver checks,
    keeping the one with the most optimal pushes (1 = the Boxoban rule:
    the best score wins; more gives harder levels for a few ms each).
    A room whose check needs more than ``solver_node_limit`` search states is
    dropped (a node limit, not a clock, keeps the output the same for a seed
    on a busy machine; the time limit is only a safety net).
    Raises UserError for impossible sizes and GeneratorFailed when
    ``max_tries`` rooms give no acceptable level.
    """
    h, w = _check_request(size, n_boxes)
    walk_steps = 2 * (h + w) if walk_steps is None else int(walk_steps)
    run_steps = 40 * (h + w) if run_steps is None else int(run_steps)
    walls = np.ones((h, w), bool)
    goals = np.zeros((h, w), bool)
    run_scores = np.zeros(n_runs, np.int64)
    run_players = np.zeros(n_runs, np.int64)
    run_boxes = np.zeros((n_runs, n_boxes), np.int64)
    for _ in range(max_tries):
        seed = int(rng.integers(0, 2**31 - 1))
        if not _reverse_play(seed, walls, n_boxes, walk_steps, turn_prob, n_runs, run_steps, pull_prob,
                             allow_box_on_goal, goals, run_scores, run_players, run_boxes):
            continue
        # The best-scored run states, best first; the solver picks among them.
        order = [int(i) for i in np.argsort(-run_scores, kind="stable") if run_scores[i] > 0][:max(1, candidates)]
        best = None
        for i in order:
            boxes = np.zeros((h, w), bool)
            boxes.flat[run_boxes[i]] = True
            prc = (int(run_players[i]) // w, int(run_players[i]) % w)
            res = solve_arrays(walls, goals, boxes, prc, time_limit=solver_time_limit,
                               node_limit=solver_node_limit)
            if res.status == "solved" and res.pushes >= min_pushes and (best is None or res.pushes > best[0]):
                best = (res.pushes, boxes, prc)
        if best is None:
            continue
        return Level(walls.copy(), goals.copy(), best[1], best[2], name=name)
    raise GeneratorFailed(
        f"no {h}x{w} level with {n_boxes} boxes and at least {min_pushes} pushes found in {max_tries} tries; "
        f"lower min_pushes, use fewer boxes or a larger size"
    )


def generate_levels(n: int, size: int | tuple[int, int] = 10, n_boxes: int = 4, seed: int = 0,
                    **kwargs) -> list[Level]:
    """``n`` levels, the same for the same seed and arguments (named gen-<seed>-<i>)."""
    if n < 0:
        raise UserError(f"number of levels must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    return [generate_level(rng, size, n_boxes, name=f"gen-{seed}-{i}", **kwargs) for i in range(n)]


@dataclass
class LevelSampler:
    """A level source for environments: ``sampler(rng, n) -> list[Level]``,
    fresh generated levels drawn with the caller's generator."""

    size: int | tuple[int, int] = 10
    n_boxes: int = 4
    min_pushes: int = 6
    options: dict | None = None

    def __post_init__(self) -> None:
        _check_request(self.size if not isinstance(self.size, int) else (self.size, self.size), self.n_boxes)

    def __call__(self, rng: np.random.Generator, n: int) -> list[Level]:
        kw = dict(self.options or {})
        return [generate_level(rng, self.size, self.n_boxes, min_pushes=self.min_pushes, **kw) for _ in range(n)]


def push_counts(levels: Sequence[Level], time_limit: float = 10.0) -> list[int]:
    """Optimal pushes of each level (-1 where not solved); a convenience for reports."""
    return [solve_level(lv, time_limit).pushes for lv in levels]
