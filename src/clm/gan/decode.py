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
   condition's box count when given); the boxes go on the k most box-like
   room cells other than the player's, the goals on the k most goal-like
   room cells (a cell may hold both: a box on a goal).

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
    p_goal = p[GOAL] + p[BOX_ON_GOAL] + p[PLAYER_ON_GOAL]
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

    box_score = np.where(room, p_box, -np.inf)
    box_score[player] = -np.inf
    boxes = np.zeros((h, w), bool)
    boxes.flat[np.argsort(-box_score, axis=None, kind="stable")[:k]] = True
    goals = np.zeros((h, w), bool)
    goals.flat[np.argsort(-np.where(room, p_goal, -np.inf), axis=None, kind="stable")[:k]] = True
    return Level(~room, goals, boxes, (int(player[0]), int(player[1])), name=name)


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
