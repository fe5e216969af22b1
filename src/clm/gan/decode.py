"""Turning a tile generator's per-cell probabilities into valid levels.

A raw sample (argmax or Gumbel draw per cell) is rarely a legal Sokoban
level: two players, five boxes for three goals, a hole in the outer wall.
``decode_levels`` builds a structurally valid level from the probabilities
instead, by taking the most probable cells per tile type:

1. the outer ring becomes wall; an inner cell is open when its most probable
   tile is not a wall;
2. the player goes on the open cell most likely to hold a player (an inner
   cell is opened for it when none is open);
3. open cells not 4-connected to the player become walls (so the room is
   enclosed and every cell can matter); a lone player cell gets its likeliest
   inner neighbour opened;
4. k = round(expected box count over the room), clamped to [1, room-1] (or the
   condition's box count when given); of them, k times G's box-on-goal share
   of its box mass (at most k - 1: a level must not start solved) go on the
   most box-on-goal-like cells, the rest on the most box-like
   room cells other than the player's, and their goals on the most goal-like
   cells left (a box's or the player's cell only when nothing else is left,
   or, for the player's, when G prefers a player on a goal there).

Every decoded level has exactly one player, boxes == goals >= 1 and a closed
wall, which :meth:`Level.problems` confirms (tests check it on random logits).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from clm.domains.levels.level import (BOX, BOX_ON_GOAL, GOAL, PLAYER, PLAYER_ON_GOAL, WALL, Level,
                                      levels_to_onehot)


def decode_level(probs: np.ndarray, n_boxes: int | None = None, name: str = "") -> Level:
    """One (7, H, W) probability grid -> a structurally valid Level."""
    p = np.asarray(probs, dtype=np.float64)
    _, h, w = p.shape
    if h < 3 or w < 3:
        raise ValueError(f"a level needs at least 3x3 cells, got {h}x{w}")
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True
    open_cells = (p.argmax(0) != WALL) & inner
    p_player = p[PLAYER] + p[PLAYER_ON_GOAL]
    p_box = p[BOX] + p[BOX_ON_GOAL]
    p_open = 1.0 - p[WALL]

    cand = np.where(open_cells, p_player, -np.inf) if open_cells.any() else np.where(inner, p_player, -np.inf)
    player = np.unravel_index(int(np.argmax(cand)), (h, w))
    open_cells[player] = True
    labels, _ = ndimage.label(open_cells)  # 4-connectivity
    room = labels == labels[player]
    if room.sum() < 2:  # a box needs a cell besides the player's
        r, c = player
        nbrs = [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)) if inner[r + dr, c + dc]]
        best = max(nbrs, key=lambda rc: p_open[rc])
        room[best] = True
    size = int(room.sum())
    k = int(round(float(p_box[room].sum()))) if n_boxes is None else int(n_boxes)
    k = min(max(k, 1), size - 1)

    # Box-on-goal cells: k times G's share of box-on-goal in its box mass, at
    # most k - 1 (a level must not start solved), on their likeliest cells.
    # Boxoban's levels have none; the old decoder overlapped its box and goal
    # picks, and those overlaps were its commonest unseen 2x2 patterns. The
    # other boxes go on the likeliest box cells, the other goals on the
    # likeliest goal cells among the rest (a box's cell or the player's only
    # when no other is left, the player's first when G prefers a player on a
    # goal there).
    box_mass, on_goal_mass = float(p[BOX][room].sum()), float(p[BOX_ON_GOAL][room].sum())
    k_on_goal = min(k - 1, int(round(k * on_goal_mass / max(box_mass + on_goal_mass, 1e-12))))
    free = room.copy()
    free[player] = False
    boxes = np.zeros((h, w), bool)
    goals = np.zeros((h, w), bool)
    on_goal = _top_cells(np.where(free, p[BOX_ON_GOAL], -np.inf), k_on_goal)
    boxes |= on_goal
    goals |= on_goal
    # A box in a corner off a goal can never move again: such a level is
    # unsolvable, and Boxoban has none, so corners are a last resort.
    box_score = np.where(free & ~boxes, p[BOX], -np.inf)
    box_score = np.where(_corners(~room), box_score - 2.0, box_score)
    boxes |= _top_cells(box_score, k - k_on_goal)
    goal_score = np.where(room & ~boxes, p[GOAL], -np.inf)
    goal_score = np.where(boxes & ~on_goal, p[GOAL] - 2.0, goal_score)  # a fallback: a box on a goal
    player_goal = p[PLAYER_ON_GOAL][player] > p[PLAYER][player]
    goal_score[player] = p[PLAYER_ON_GOAL][player] + (1.0 if player_goal else -3.0)
    goals |= _top_cells(goal_score, k - k_on_goal)
    return Level(~room, goals, boxes, (int(player[0]), int(player[1])), name=name)


def _corners(wall: np.ndarray) -> np.ndarray:
    """Cells with a wall above or below and a wall left or right (outside the
    grid counts as wall)."""
    wp = np.pad(wall, 1, constant_values=True)
    vertical = wp[:-2, 1:-1] | wp[2:, 1:-1]
    horizontal = wp[1:-1, :-2] | wp[1:-1, 2:]
    return vertical & horizontal


def _top_cells(score: np.ndarray, k: int) -> np.ndarray:
    """A mask of the k highest-scoring cells (ties: row-major order)."""
    mask = np.zeros(score.shape, bool)
    if k > 0:
        mask.flat[np.argsort(-score, axis=None, kind="stable")[:k]] = True
    return mask


def decode_levels(probs: np.ndarray, n_boxes: np.ndarray | list[int] | None = None) -> list[Level]:
    """(N, 7, H, W) probabilities -> N structurally valid levels."""
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[1] != 7:
        raise ValueError(f"decode_levels needs (N, 7, H, W) tile probabilities, got {probs.shape}")
    return [decode_level(probs[i], None if n_boxes is None else int(n_boxes[i])) for i in range(len(probs))]


def raw_levels(onehot: np.ndarray) -> tuple[list[Level | None], np.ndarray]:
    """Raw samples (N, 7, H, W), argmax per cell, read as levels without any
    repair: a Level where the grid holds exactly one player (else None), and
    whether each is structurally valid."""
    from clm.domains.levels.level import tile_player_counts, tiles_to_levels

    tiles = np.asarray(onehot).argmax(1).astype(np.int8)
    ok_player = tile_player_counts(tiles) == 1
    out: list[Level | None] = [None] * len(tiles)
    valid = np.zeros(len(tiles), bool)
    if ok_player.any():
        idx = np.flatnonzero(ok_player)
        for i, lv in zip(idx, tiles_to_levels(tiles[idx])):
            out[i] = lv
            valid[i] = lv.is_valid()
    return out, valid


def levels_onehot(levels: list[Level]) -> np.ndarray:
    return levels_to_onehot(levels)
