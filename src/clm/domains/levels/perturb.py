"""Perturbed levels, to measure how a player holds up when its input shifts.

* :func:`mirrored` and :func:`rotated`: the level seen in a mirror, or turned
  a quarter. Sokoban's rules are the same under the symmetries of the
  square, so a level stays solvable with the same optimal pushes (tested);
  no solver check is needed for these.
* :func:`moved_wall`: one inner wall cell opened and one free floor cell
  walled, kept only where the solver still solves the level (the shift a
  designer's small edit makes).
* :func:`random_symmetries`: each level under one of the 8 symmetries drawn
  at random (the player's augmentation).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from clm.domains.levels.demos import SYMMETRIES, transform_tiles
from clm.domains.levels.level import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.solver import solve_levels

MIRROR = (False, False, True)  # columns reversed
QUARTER_TURN = (True, False, True)  # transpose, then columns reversed: a clockwise quarter turn


def _transformed(levels: Sequence[Level], sym: tuple[bool, bool, bool]) -> list[Level]:
    if not levels:
        return []
    return tiles_to_levels(transform_tiles(levels_to_tiles(levels), sym), [lv.name for lv in levels])


def mirrored(levels: Sequence[Level]) -> list[Level]:
    """Each level mirrored left to right."""
    return _transformed(levels, MIRROR)


def rotated(levels: Sequence[Level]) -> list[Level]:
    """Each level turned a quarter clockwise (square levels keep their shape,
    so a network made for the size still reads them)."""
    return _transformed(levels, QUARTER_TURN)


def random_symmetries(tiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, H, W) square tile grids, each under one of the 8 symmetries of the square drawn from ``rng``."""
    out = np.empty_like(tiles)
    pick = rng.integers(len(SYMMETRIES), size=len(tiles))
    for k, sym in enumerate(SYMMETRIES):
        idx = np.flatnonzero(pick == k)
        if len(idx):
            out[idx] = transform_tiles(tiles[idx], sym)
    return out


def moved_wall(levels: Sequence[Level], rng: np.random.Generator, tries: int = 8, time_limit: float = 2.0,
               n_jobs: int = 1) -> tuple[list[Level], np.ndarray]:
    """Each level with one inner wall cell (a wall next to floor, not on the
    grid's edge) turned to floor and one empty floor cell (no box, goal or
    player) turned to wall; of ``tries`` such edits, the first the solver
    solves is kept. Returns the edited levels and the indices of the levels
    they come from (a level none of whose tries is solvable is left out)."""
    tried = []  # (level index, its edits in draw order)
    for i, lv in enumerate(levels):
        inner = np.zeros_like(lv.walls)
        inner[1:-1, 1:-1] = True
        floor = ~lv.walls
        near_floor = np.zeros_like(floor)
        near_floor[1:, :] |= floor[:-1, :]
        near_floor[:-1, :] |= floor[1:, :]
        near_floor[:, 1:] |= floor[:, :-1]
        near_floor[:, :-1] |= floor[:, 1:]
        walls = np.argwhere(lv.walls & inner & near_floor)
        empty = ~lv.walls & ~lv.boxes & ~lv.goals
        empty[lv.player] = False
        frees = np.argwhere(empty)
        if not len(walls) or not len(frees):
            continue
        candidates = []
        for _ in range(tries):
            new_walls = lv.walls.copy()
            new_walls[tuple(walls[rng.integers(len(walls))])] = False
            new_walls[tuple(frees[rng.integers(len(frees))])] = True
            candidates.append(Level(new_walls, lv.goals.copy(), lv.boxes.copy(), lv.player, name=lv.name))
        tried.append((i, candidates))
    # solve the k-th edit of every level still without a solvable one, k = 0, 1, ...: the first solvable
    # edit of each level is kept, as if its edits were solved one by one, and no later edit is solved
    chosen: dict[int, Level] = {}
    for k in range(tries):
        batch = [(i, c[k]) for i, c in tried if i not in chosen]
        if not batch:
            break
        for (i, cand), res in zip(batch, solve_levels([c for _, c in batch], time_limit=time_limit, n_jobs=n_jobs)):
            if res.solved:
                chosen[i] = cand
    where = sorted(chosen)
    return [chosen[i] for i in where], np.asarray(where, dtype=np.int64)
