"""Turning a tile generator's per-cell probabilities into valid levels.

A raw sample (argmax or Gumbel draw per cell) is rarely a legal Sokoban
level: two players, five boxes for three goals, a hole in the outer wall.
``decode_levels`` builds a structurally valid level from the probabilities
instead, by taking the most probable cells per tile type:

1. the outer ring becomes wall; an inner cell is open when its most probable
   tile is not a wall;
2. the player goes on the open cell most likely to hold a player (or one
   drawn, see below; an inner cell is opened for it when none is open);
3. open regions not 4-connected to the player's are joined to it through
   the closed cells G finds likeliest open (the cheapest path by
   -log p(open)), so the room keeps all of G's floor (dropping those
   regions instead made G's rooms too compact: their 2x2 wall/floor KL rose
   from 0.0042 to 0.0059); a lone player cell gets its likeliest inner
   neighbour opened;
4. k = round(expected box count over the room), clamped to [1, room-1] (or the
   condition's box count when given); of them, k times G's box-on-goal share
   of its box mass (at most k - 1: a level must not start solved) go on the
   most box-on-goal-like cells, the rest on box-like room cells other than
   the player's where a box would not be frozen at once (in a corner, or in
   a 2x2 square of walls and boxes), and their goals on goal-like cells left
   (a box's or the player's cell only when nothing else is left, or, for
   the player's, when G prefers a player on a goal there).

The player, boxes and goals are either the *most* probable cells
(``rng=None``: deterministic, what the CLM's designer needs to score a
latent vector) or *drawn* in proportion to G's probabilities (``rng`` given:
Gumbel top-k, i.e. sampling cells without replacement). Drawing is how G
was trained: D saw a Gumbel draw per cell, so G spreads a box over several
likely cells and the k most likely of them are a distribution G never
produced (adjacent boxes twice as common as in Boxoban); drawn, the same G's
decoded samples went from tile-pattern KL 0.047 to 0.030 (docs/benchmarks.md).

Open cells follow the argmax rule above, or, with ``wall_threshold``, are the
cells whose wall score, logit p(wall), is below it (:func:`room_size_threshold`
fits it to the training corpus's room size). When drawing, the wall score
carries logistic noise at temperature ``WALL_TEMPERATURE``: a tempered draw
of wall or not per cell (a full draw, temperature 1, scatters single walls
and holes; none at all makes G's rooms too round: open 2x2 floor blocks 3.8%
of windows against Boxoban's 3.0%).

Every decoded level has exactly one player, boxes == goals >= 1 and a closed
wall, which :meth:`Level.problems` confirms (tests check it on random logits).
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy import ndimage

from clm.domains.levels.level import (
    BOX,
    BOX_ON_GOAL,
    FLOOR,
    GOAL,
    PLAYER,
    PLAYER_ON_GOAL,
    WALL,
    Level,
    levels_to_onehot,
    tile_player_counts,
    tiles_to_levels,
)
from clm.domains.levels.solver import live_cells


def decode_level(probs: np.ndarray, n_boxes: int | None = None, name: str = "",
                 rng: np.random.Generator | None = None, wall_threshold: float | None = None,
                 wall_temperature: float = 0.0, live_boxes: bool = False) -> Level:
    """One (7, H, W) probability grid -> a structurally valid Level; the
    player, boxes and goals drawn with ``rng`` when given, else the most
    probable cells; an
    inner cell is open when its wall score (:func:`wall_scores`, tempered
    by ``wall_temperature`` when drawing) is below ``wall_threshold`` when
    given, else when its most probable tile is not a wall."""
    p = np.asarray(probs, dtype=np.float64)
    _, h, w = p.shape
    if h < 3 or w < 3:
        raise ValueError(f"a level needs at least 3x3 cells, got {h}x{w}")
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True
    if wall_threshold is not None:
        open_cells = (wall_scores(p[WALL], rng, wall_temperature) < wall_threshold) & inner
    else:
        open_cells = (p.argmax(0) != WALL) & inner
    p_player = p[PLAYER] + p[PLAYER_ON_GOAL]
    p_box = p[BOX] + p[BOX_ON_GOAL]
    p_open = 1.0 - p[WALL]

    cand = np.where(open_cells, p_player, -np.inf) if open_cells.any() else np.where(inner, p_player, -np.inf)
    if rng is not None:
        cand = np.log(np.maximum(cand, 1e-30)) + rng.gumbel(size=cand.shape)
    player = np.unravel_index(int(np.argmax(cand)), (h, w))
    open_cells[player] = True
    room = _join_open_cells(open_cells, player, -np.log(np.maximum(p_open, 1e-12)), inner)
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
    # ranking scores: log-probabilities, plus Gumbel noise when drawing
    noise = rng.gumbel(size=(3, h, w)) if rng is not None else np.zeros((3, h, w))
    log_p = np.log(np.maximum(p, 1e-12))
    boxes = np.zeros((h, w), bool)
    goals = np.zeros((h, w), bool)
    on_goal = _top_cells(np.where(free, log_p[BOX_ON_GOAL] + noise[0], -np.inf), k_on_goal)
    boxes |= on_goal
    goals |= on_goal
    player_goal = p[PLAYER_ON_GOAL][player] > p[PLAYER][player]
    if live_boxes:
        # Goals first, then boxes only on live cells: cells from which a box can reach a goal (a box
        # anywhere else is a simple deadlock; Boxoban's levels have none). Dead cells are a fallback.
        goal_score = np.where(room & ~boxes, log_p[GOAL] + noise[2], -np.inf)
        goal_score[player] = log_p[PLAYER_ON_GOAL][player] + noise[2][player] + (
            0.0 if player_goal else -_LAST_RESORT)
        goals |= _top_cells(goal_score, k - k_on_goal)
        live = live_cells(~room, goals)
        score = log_p[BOX] + noise[1] - np.where(live, 0.0, _LAST_RESORT)
        boxes |= _place_boxes(np.where(free & ~boxes & ~goals, score, -np.inf), k - k_on_goal, ~room, boxes)
        return Level(~room, goals, boxes, (int(player[0]), int(player[1])), name=name)
    boxes |= _place_boxes(np.where(free & ~boxes, log_p[BOX] + noise[1], -np.inf), k - k_on_goal, ~room, boxes)
    # goals: room cells without a box; a box's cell is a fallback (a box on a
    # goal), and so is the player's unless G prefers a player on a goal there
    goal_score = np.where(room & ~boxes, log_p[GOAL] + noise[2], -np.inf)
    goal_score = np.where(boxes & ~on_goal, log_p[GOAL] + noise[2] - _LAST_RESORT, goal_score)
    goal_score[player] = log_p[PLAYER_ON_GOAL][player] + noise[2][player] + (
        _LAST_RESORT if player_goal else -2 * _LAST_RESORT)
    goals |= _top_cells(goal_score, k - k_on_goal)
    return Level(~room, goals, boxes, (int(player[0]), int(player[1])), name=name)


def _join_open_cells(open_cells: np.ndarray, player: tuple, cost: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The room: the player's 4-connected open cells, with every other open
    region joined to it by the cheapest path of inner cells (``cost`` per
    closed cell opened, 0 per open cell; Dijkstra from the room)."""
    labels, n = ndimage.label(open_cells)  # 4-connectivity
    room = labels == labels[player]
    while n > 1 and (open_cells & ~room).any():
        dist = np.where(room, 0.0, np.inf)
        prev: dict[tuple[int, int], tuple[int, int]] = {}
        heap = [(0.0, int(r), int(c)) for r, c in zip(*np.nonzero(room))]
        heapq.heapify(heap)
        reached = None
        while heap:
            d, r, c = heapq.heappop(heap)
            if d > dist[r, c]:
                continue
            if open_cells[r, c] and not room[r, c]:
                reached = (r, c)
                break
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if inner[rr, cc]:
                    nd = d + (0.0 if open_cells[rr, cc] else cost[rr, cc])
                    if nd < dist[rr, cc]:
                        dist[rr, cc] = nd
                        prev[(rr, cc)] = (r, c)
                        heapq.heappush(heap, (nd, rr, cc))
        if reached is None:  # cannot happen while open cells are inner cells; never loop forever
            break
        cell: tuple[int, int] | None = reached
        while cell is not None and not room[cell]:
            room[cell] = True
            cell = prev.get(cell)
        room |= np.isin(labels, np.unique(labels[room & open_cells]))  # the regions the path reached
    return room


_LAST_RESORT = 1e3  # a score offset larger than any log-probability and Gumbel draw can bridge


def _place_boxes(score: np.ndarray, k: int, wall: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """A mask of k boxes on the best-scoring cells where a box would not be
    frozen at once: not in a corner and not completing a 2x2 square of walls
    and boxes (``placed``: boxes already there). A frozen box off a goal
    makes a level unsolvable and Boxoban has none; such cells are taken only
    when k boxes do not fit otherwise."""
    h, w = score.shape
    mask = np.zeros((h, w), bool)
    if k <= 0:
        return mask
    blocked = np.pad(wall | placed, 1, constant_values=True)  # outside the grid counts as wall
    frozen_cells = []
    for i in np.argsort(-score, axis=None, kind="stable"):
        if not np.isfinite(score.flat[i]):
            break
        r, c = divmod(int(i), w)
        R, C = r + 1, c + 1  # in the padded grid
        corner = (blocked[R - 1, C] or blocked[R + 1, C]) and (blocked[R, C - 1] or blocked[R, C + 1])
        square = any(blocked[R + dr, C] and blocked[R, C + dc] and blocked[R + dr, C + dc]
                     for dr in (-1, 1) for dc in (-1, 1))
        if corner or square:
            frozen_cells.append(i)
            continue
        mask.flat[i] = True
        blocked[R, C] = True
        if mask.sum() == k:
            return mask
    for i in frozen_cells[: k - int(mask.sum())]:
        mask.flat[i] = True
    return mask


def _top_cells(score: np.ndarray, k: int) -> np.ndarray:
    """A mask of the k highest-scoring cells (ties: row-major order)."""
    mask = np.zeros(score.shape, bool)
    if k > 0:
        mask.flat[np.argsort(-score, axis=None, kind="stable")[:k]] = True
    return mask


def decode_levels(probs: np.ndarray, n_boxes: np.ndarray | list[int] | None = None,
                  rng: np.random.Generator | int | None = None, wall_threshold: float | None = None,
                  wall_temperature: float = 0.0, live_boxes: bool = False) -> list[Level]:
    """(N, 7, H, W) probabilities -> N structurally valid levels. ``rng`` (a
    Generator or a seed): draw the player, boxes and goals in proportion to G's
    probabilities; None: take the most probable cells. ``wall_threshold``:
    see :func:`decode_level` and :func:`room_size_threshold`."""
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[1] != 7:
        raise ValueError(f"decode_levels needs (N, 7, H, W) tile probabilities, got {probs.shape}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return [decode_level(probs[i], None if n_boxes is None else int(n_boxes[i]), rng=rng, wall_threshold=wall_threshold,
                         wall_temperature=wall_temperature, live_boxes=live_boxes) for i in range(len(probs))]


WALL_TEMPERATURE = 0.3  # decoded KL over 3 generators, temperature 0 / 0.2 / 0.3 / 0.4: 0.0130-0.0153 / 0.0123-0.0138 / 0.0106-0.0134 / 0.0123-0.0135


def wall_scores(p_wall: np.ndarray, rng: np.random.Generator | None = None, temperature: float = 0.0) -> np.ndarray:
    """logit p(wall), plus ``temperature`` times logistic noise when ``rng``
    is given (thresholding it is then a tempered draw of wall or not)."""
    p_wall = np.clip(np.asarray(p_wall, dtype=np.float64), 1e-12, 1 - 1e-12)
    score = np.log(p_wall) - np.log1p(-p_wall)
    if rng is not None and temperature > 0:
        u = np.clip(rng.random(score.shape), 1e-12, 1 - 1e-12)
        score = score + temperature * (np.log(u) - np.log1p(-u))
    return score


def room_size_threshold(probs: np.ndarray, open_fraction: float, rng: np.random.Generator | int | None = None,
                        temperature: float = 0.0) -> float:
    """The wall score (:func:`wall_scores`, with ``rng`` and ``temperature``
    as the decoder will use them) below which ``open_fraction`` of the inner
    cells of ``probs`` (N, 7, H, W) lie: with it, decoded rooms have on
    average the share of open cells that the training corpus has.

    Why: G's p(wall) is not calibrated. A G trained on Boxoban opened ~1-2.5
    cells more per 10x10 level than Boxoban has (the argmax rule), and the
    surplus showed as open 2x2 floor blocks, the largest term of its
    tile-pattern KL. One scalar fitted to the corpus's room size, like
    temperature scaling of a classifier, corrects that bias without touching
    G's layout (which cells are open is still G's ranking)."""
    if not 0.0 < open_fraction < 1.0:
        raise ValueError(f"open_fraction must be in (0, 1), got {open_fraction}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    inner = wall_scores(np.asarray(probs)[:, WALL, 1:-1, 1:-1], rng, temperature)
    return float(np.quantile(inner, open_fraction))


def decode_generated(probs: np.ndarray, conds=None, level_decode: str = "sample", seed: int = 0,
                     wall_threshold: float | None = None, live_boxes: bool = False) -> list[Level]:
    """A tile generator's samples -> valid levels: ``probs`` (N, 7, H, W) with
    the box-count conditions ``conds`` (N, max_boxes one-hot, array or
    tensor; None for an unconditional G). ``level_decode``: "sample" draws
    the player, boxes and goals from G's probabilities and, with a
    ``wall_threshold`` (from :func:`generated_wall_threshold`), walls at
    ``WALL_TEMPERATURE`` (seeded by ``seed``); "top" takes the most probable
    cells."""
    rng, temperature = _drawing(level_decode, seed)
    n_boxes = (np.asarray(conds).argmax(1) + 1).tolist() if conds is not None else None
    return decode_levels(probs, n_boxes, rng=rng, wall_threshold=wall_threshold, wall_temperature=temperature,
                         live_boxes=live_boxes)


def generated_wall_threshold(probs: np.ndarray, open_fraction: float, level_decode: str = "sample",
                             seed: int = 0) -> float:
    """:func:`room_size_threshold` for :func:`decode_generated` with the same
    ``level_decode`` (drawn walls: tempered by ``WALL_TEMPERATURE``)."""
    rng, temperature = _drawing(level_decode, seed)
    return room_size_threshold(probs, open_fraction, rng=rng, temperature=temperature)


def _drawing(level_decode: str, seed: int) -> tuple[int | None, float]:
    """The decoder's seed and wall temperature for a ``level_decode`` mode."""
    if level_decode not in ("sample", "top"):
        raise ValueError(f"level_decode must be sample or top, got '{level_decode}'")
    return (seed, WALL_TEMPERATURE) if level_decode == "sample" else (None, 0.0)


def raw_levels(onehot: np.ndarray) -> tuple[list[Level | None], np.ndarray]:
    """Raw samples (N, 7, H, W), argmax per cell, read as levels without any
    repair: a Level where the grid holds exactly one player (else None), and
    whether each is structurally valid."""
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


def move_player(levels: list[Level], score, moves: int, beta: float = 0.5,
                rng: np.random.Generator | int | None = 0) -> list[Level]:
    """Metropolis-Hastings over the player's cell: ``moves`` times, each level's
    player is proposed a cell drawn uniformly from its empty floor and goal
    cells (a symmetric proposal) and moves there with probability
    min(1, exp(beta * (score(new) - score(old)))). ``score`` maps tile grids
    (N, H, W) int to (N,) log-scores, e.g. a learned model's pseudo-log-
    likelihood of the grid (:func:`clm.gan.refiner.pseudo_log_likelihood`):
    the player then settles where such models put it given the walls, boxes
    and goals the decoder placed, which independent per-cell draws cannot do
    (the player beside a box or in a dead end). Walls, boxes and goals stay;
    every level stays structurally valid."""
    if moves <= 0 or not levels:
        return levels
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    tiles = levels_to_onehot(levels).argmax(1).astype(np.int8)
    n, h, w = tiles.shape
    flat = tiles.reshape(n, h * w)
    current = np.asarray(score(tiles), dtype=np.float64)
    rows = np.arange(n)
    for _ in range(moves):
        free = (flat == FLOOR) | (flat == GOAL)
        has_free = free.any(1)
        dst = np.argmax(np.where(free, rng.random(free.shape), -1.0), 1)
        src = np.argmax((flat == PLAYER) | (flat == PLAYER_ON_GOAL), 1)
        new = flat.copy()
        new[rows, src] = np.where(flat[rows, src] == PLAYER_ON_GOAL, GOAL, FLOOR)
        new[rows, dst] = np.where(flat[rows, dst] == GOAL, PLAYER_ON_GOAL, PLAYER)
        proposed = np.asarray(score(new.reshape(n, h, w)), dtype=np.float64)
        accept = has_free & (np.log(np.maximum(rng.random(n), 1e-300)) < beta * (proposed - current))
        flat[accept], current[accept] = new[accept], proposed[accept]
    names = [lv.name for lv in levels]
    return tiles_to_levels(flat.reshape(n, h, w), names=names)
