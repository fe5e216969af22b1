"""Exact, push-optimal Sokoban solver.

A* over *push states*: a state is the sorted set of box cells plus the
player's normalised position (the smallest cell index of the region the
player can walk to without pushing). One edge is one push, so the first
solution found is optimal in pushes. Moves between pushes are shortest walks
(found by BFS when the solution is rebuilt), so ``n_moves`` is the length of
that push-optimal solution, not a move-optimal one.

Search pieces, all compiled with numba (no Python per node):

* cells are indices into the level grid padded with one ring of walls, so a
  neighbour offset never leaves the array;
* heuristic: minimum-cost matching (Hungarian algorithm) of boxes to goals on
  per-goal *push distance* maps. A push distance ignores the player and the
  other boxes, so it is a lower bound; one push changes one box's distance by
  at most one, so the heuristic is consistent and A* never reopens a state;
* dead squares: floor cells from which no reverse pull from any goal reaches
  (simple deadlocks); a box is never pushed onto one;
* freeze deadlocks: after a push, a box that can move along neither axis
  (walls, dead-square pairs, or boxes that are themselves frozen) and is not
  on a goal ends the branch;
* an unmatchable state (two boxes that can only reach one goal) ends the
  branch too;
* Zobrist hashing and an open-addressing transposition table; a binary heap
  ordered by f, then larger g (deeper first), then age.

All pruning is sound, so ``status == "unsolvable"`` is a proof: the whole
reachable push-state space was exhausted. ``"limit"`` means the time or node
limit stopped the search first.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from numba import njit

from clm.core.errors import UserError

__all__ = ["SolveResult", "solve_level", "solve_arrays", "solve_levels", "difficulty", "warmup"]

# Directions as in the simulator: 0 up, 1 down, 2 left, 3 right.
_DIR_CHARS = "udlr"
_INF = 1 << 20

# Status codes of the compiled search.
_RUNNING, _SOLVED, _EXHAUSTED, _NODE_LIMIT, _GROW = 0, 1, 2, 3, 4


@dataclass
class SolveResult:
    """Outcome of one solve.

    status: "solved", "unsolvable" (proved: search space exhausted with sound
    pruning) or "limit" (time or node limit hit first).
    moves: LURD string, lowercase for walks, uppercase for pushes ("" unless solved).
    pushes / n_moves: optimal push count and length of ``moves`` (-1 unless solved).
    expansions: states expanded; states: states stored; seconds: wall time.
    """

    status: str
    moves: str = ""
    pushes: int = -1
    n_moves: int = -1
    expansions: int = 0
    states: int = 0
    seconds: float = 0.0
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def solved(self) -> bool:
        return self.status == "solved"


# ---------------------------------------------------------------------------
# compiled pieces


@njit(cache=True)
def _push_distances(walls, goal_cells, width):
    """dist[j, c]: pushes needed to bring a box from cell c to goal j, ignoring
    the other boxes and where the player stands (reverse pulls from the goal).
    A pull of a box from y to x = y - off needs x and x - off to be free."""
    ncells = walls.shape[0]
    ng = goal_cells.shape[0]
    dist = np.full((ng, ncells), _INF, np.int32)
    offs = np.array([-width, width, -1, 1])
    queue = np.empty(ncells, np.int64)
    for j in range(ng):
        g = goal_cells[j]
        dist[j, g] = 0
        head = 0
        tail = 0
        queue[tail] = g
        tail += 1
        while head < tail:
            y = queue[head]
            head += 1
            for k in range(4):
                off = offs[k]
                x = y - off  # box came from x, pushed by a player standing at x - off
                if walls[x] or walls[x - off]:
                    continue
                if dist[j, x] == _INF:
                    dist[j, x] = dist[j, y] + 1
                    queue[tail] = x
                    tail += 1
    return dist


def live_cells(walls: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(H, W) bool: the cells from which a box can be pushed onto at least
    one goal (other boxes and the player's position ignored). A box anywhere
    else is a simple deadlock: the level cannot be solved."""
    walls = np.asarray(walls, bool)
    h, w = walls.shape
    padded = np.pad(walls, 1, constant_values=True)  # the outside is wall, so no pull leaves the grid
    goal_cells = np.flatnonzero(np.pad(np.asarray(goals, bool), 1))
    if len(goal_cells) == 0:
        return np.zeros((h, w), bool)
    dist = _push_distances(padded.ravel(), goal_cells.astype(np.int64), w + 2)
    return (dist.min(axis=0) < _INF).reshape(h + 2, w + 2)[1:-1, 1:-1] & ~walls


@njit(cache=True)
def _hungarian(cost, n, m, u, v, p, way, minv, used):
    """Minimum-cost assignment of n rows to m >= n columns (1-indexed potentials
    algorithm, O(n^2 m)). Scratch arrays are passed in to avoid allocation."""
    for j in range(m + 1):
        u[j] = 0
        v[j] = 0
        p[j] = 0
        way[j] = 0
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        for j in range(m + 1):
            minv[j] = 1 << 40
            used[j] = False
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = 1 << 40
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    total = 0
    for j in range(1, m + 1):
        if p[j] != 0:
            total += cost[p[j] - 1, j - 1]
    return total


@njit(cache=True)
def _heuristic(boxes, dist, cost, u, v, p, way, minv, used):
    nb = boxes.shape[0]
    ng = dist.shape[0]
    for i in range(nb):
        b = boxes[i]
        for j in range(ng):
            cost[i, j] = dist[j, b]
    return _hungarian(cost, nb, ng, u, v, p, way, minv, used)


@njit(cache=True)
def _frozen(pos, walls, dead, boxgrid, mark, width):
    """True if the box at ``pos`` can never move (or only onto dead squares),
    assuming the boxes marked in ``mark`` (the callers up the recursion) stay
    put. Mutual support is sound: none of the boxes involved can move first."""
    mark[pos] = 1
    result = True
    for axis in range(2):
        step = 1 if axis == 0 else width
        a = pos - step
        b = pos + step
        blocked = False
        if walls[a] or walls[b] or mark[a] == 1 or mark[b] == 1:
            blocked = True
        elif dead[a] and dead[b]:
            blocked = True
        elif boxgrid[a] != 0 and _frozen(a, walls, dead, boxgrid, mark, width):
            blocked = True
        elif boxgrid[b] != 0 and _frozen(b, walls, dead, boxgrid, mark, width):
            blocked = True
        if not blocked:
            result = False
            break
    mark[pos] = 0
    return result


@njit(cache=True)
def _freeze_deadlock(t, walls, dead, goals, boxgrid, mark, width):
    """After a box arrives at t: deadlock if a frozen box is off its goal."""
    if not _frozen(t, walls, dead, boxgrid, mark, width):
        return False
    if not goals[t]:
        return True
    # The box at t is frozen on a goal; it may have frozen a neighbour off goal.
    for k in range(4):
        off = 1 if k == 0 else (-1 if k == 1 else (width if k == 2 else -width))
        n = t + off
        if boxgrid[n] != 0 and not goals[n]:
            if _frozen(n, walls, dead, boxgrid, mark, width):
                return True
    return False


@njit(cache=True)
def _flood(start, walls, boxgrid, stamp, stamp_id, queue, width):
    """Mark the cells the player reaches from ``start``; return the smallest."""
    head = 0
    tail = 0
    queue[tail] = start
    tail += 1
    stamp[start] = stamp_id
    best = start
    while head < tail:
        c = queue[head]
        head += 1
        if c < best:
            best = c
        for k in range(4):
            n = c + (-width if k == 0 else (width if k == 1 else (-1 if k == 2 else 1)))
            if stamp[n] != stamp_id and not walls[n] and boxgrid[n] == 0:
                stamp[n] = stamp_id
                queue[tail] = n
                tail += 1
    return best


@njit(cache=True)
def _heap_push(heap, size, key):
    i = size
    heap[i] = key
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= heap[i]:
            break
        tmp = heap[parent]
        heap[parent] = heap[i]
        heap[i] = tmp
        i = parent
    return size + 1


@njit(cache=True)
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        small = left
        right = left + 1
        if right < size and heap[right] < heap[left]:
            small = right
        if heap[i] <= heap[small]:
            break
        tmp = heap[small]
        heap[small] = heap[i]
        heap[i] = tmp
        i = small
    return top, size


_ID_BITS = 31
_G_BITS = 16
_G_MAX = (1 << _G_BITS) - 1


@njit(cache=True)
def _key(f, g, node):
    # Smaller f first; among equal f, larger g (closer to a goal); then older node.
    return (np.int64(f) << 47) | (np.int64(_G_MAX - g) << 31) | np.int64(node)


@njit(cache=True)
def _lookup(table, hsh, player, boxes, nodes_hash, nodes_player, nodes_boxes):
    """Return (slot, node id or -1)."""
    mask = table.shape[0] - 1
    slot = np.int64(hsh & np.uint64(mask))
    nb = boxes.shape[0]
    while True:
        nid = table[slot]
        if nid < 0:
            return slot, -1
        if nodes_hash[nid] == hsh and nodes_player[nid] == player:
            same = True
            for i in range(nb):
                if nodes_boxes[nid, i] != boxes[i]:
                    same = False
                    break
            if same:
                return slot, nid
        slot = (slot + 1) & mask


@njit(cache=True)
def _rebuild_table(table, nodes_hash, n_nodes):
    table[:] = -1
    mask = table.shape[0] - 1
    for nid in range(n_nodes):
        slot = np.int64(nodes_hash[nid] & np.uint64(mask))
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = nid


@njit(cache=True)
def _state_hash(boxes, player, zob_box, zob_player):
    h = zob_player[player]
    for i in range(boxes.shape[0]):
        h ^= zob_box[boxes[i]]
    return h


@njit(cache=True)
def _search(walls, dead, goals, dist, width, zob_box, zob_player,
            nodes_boxes, nodes_player, nodes_parent, nodes_from, nodes_dir, nodes_g,
            nodes_closed, nodes_hash, table, heap, counters, max_expansions, node_limit):
    """Run A* for up to ``max_expansions`` expansions, resuming from the state
    kept in the arrays. counters = [n_nodes, heap_size, expansions, goal_node].
    Returns a status code (_RUNNING means: budget used, call again)."""
    ncells = walls.shape[0]
    nb = nodes_boxes.shape[1]
    ng = dist.shape[0]
    cap = nodes_boxes.shape[0]
    n_nodes = counters[0]
    heap_size = counters[1]
    expansions = counters[2]

    boxgrid = np.zeros(ncells, np.int8)
    mark = np.zeros(ncells, np.int8)
    stamp = np.zeros(ncells, np.int32)
    stamp2 = np.zeros(ncells, np.int32)
    queue = np.empty(ncells, np.int64)
    child = np.empty(nb, np.int16)
    cost = np.empty((nb, ng), np.int64)
    u = np.empty(ng + 1, np.int64)
    v = np.empty(ng + 1, np.int64)
    p = np.empty(ng + 1, np.int64)
    way = np.empty(ng + 1, np.int64)
    minv = np.empty(ng + 1, np.int64)
    used = np.empty(ng + 1, np.bool_)
    offs = np.array([-width, width, -1, 1])
    stamp_id = 0
    stamp2_id = 0
    done = 0
    status = _RUNNING

    while True:
        if heap_size == 0:
            status = _EXHAUSTED
            break
        if done >= max_expansions:
            status = _RUNNING
            break
        # Room for this node's children (and a half-empty table) or grow first.
        if n_nodes + 4 * nb > cap or heap_size + 4 * nb > heap.shape[0] or 2 * (n_nodes + 4 * nb) > table.shape[0]:
            status = _GROW
            break
        key, heap_size = _heap_pop(heap, heap_size)
        node = np.int64(key & ((np.int64(1) << 31) - 1))
        g_key = _G_MAX - np.int64((key >> 31) & _G_MAX)
        if nodes_closed[node] or g_key != nodes_g[node]:
            continue  # stale heap entry
        nodes_closed[node] = True
        expansions += 1
        done += 1
        g = nodes_g[node]

        for i in range(nb):
            boxgrid[nodes_boxes[node, i]] = 1
        stamp_id += 1
        _flood(nodes_player[node], walls, boxgrid, stamp, stamp_id, queue, width)

        found_goal = -1
        for i in range(nb):
            b = nodes_boxes[node, i]
            for d in range(4):
                off = offs[d]
                t = b + off
                if stamp[b - off] != stamp_id or walls[t] or boxgrid[t] != 0 or dead[t]:
                    continue
                # Apply the push.
                boxgrid[b] = 0
                boxgrid[t] = 1
                if _freeze_deadlock(t, walls, dead, goals, boxgrid, mark, width):
                    boxgrid[t] = 0
                    boxgrid[b] = 1
                    continue
                # Sorted child box list.
                k = 0
                for j in range(nb):
                    c = nodes_boxes[node, j]
                    if c != b:
                        child[k] = c
                        k += 1
                pos = nb - 1
                while pos > 0 and child[pos - 1] > t:
                    child[pos] = child[pos - 1]
                    pos -= 1
                child[pos] = t
                h = _heuristic(child, dist, cost, u, v, p, way, minv, used)
                if h >= _INF:
                    boxgrid[t] = 0
                    boxgrid[b] = 1
                    continue
                stamp2_id += 1
                player = _flood(b, walls, boxgrid, stamp2, stamp2_id, queue, width)
                boxgrid[t] = 0
                boxgrid[b] = 1
                hsh = _state_hash(child, player, zob_box, zob_player)
                slot, nid = _lookup(table, hsh, player, child, nodes_hash, nodes_player, nodes_boxes)
                ng_ = g + 1
                if nid >= 0:
                    if ng_ >= nodes_g[nid]:
                        continue
                    # A shorter path to a known state (cannot happen with a
                    # consistent heuristic once closed, but stay exact).
                    nodes_g[nid] = ng_
                    nodes_parent[nid] = node
                    nodes_from[nid] = b
                    nodes_dir[nid] = d
                    nodes_closed[nid] = False
                    heap_size = _heap_push(heap, heap_size, _key(ng_ + h, ng_, nid))
                    continue
                if n_nodes >= node_limit:
                    status = _NODE_LIMIT
                    break
                nid = n_nodes
                n_nodes += 1
                for j in range(nb):
                    nodes_boxes[nid, j] = child[j]
                nodes_player[nid] = player
                nodes_parent[nid] = node
                nodes_from[nid] = b
                nodes_dir[nid] = d
                nodes_g[nid] = ng_
                nodes_closed[nid] = False
                nodes_hash[nid] = hsh
                table[slot] = nid
                if h == 0:
                    # Goal test on generation is optimal here: the parent was
                    # the open minimum with f = g + h(parent) and h(parent) = 1.
                    found_goal = nid
                    break
                heap_size = _heap_push(heap, heap_size, _key(ng_ + h, ng_, nid))
            if found_goal >= 0 or status == _NODE_LIMIT:
                break
        for i in range(nb):
            boxgrid[nodes_boxes[node, i]] = 0
        if found_goal >= 0:
            counters[3] = found_goal
            status = _SOLVED
            break
        if status == _NODE_LIMIT:
            break

    counters[0] = n_nodes
    counters[1] = heap_size
    counters[2] = expansions
    return status


# ---------------------------------------------------------------------------
# Python driver


class _Problem:
    """A level in the solver's padded, flattened encoding."""

    def __init__(self, walls, goals, boxes, player):
        walls = np.asarray(walls, bool)
        goals = np.asarray(goals, bool)
        boxes = np.asarray(boxes, bool)
        h, w = walls.shape
        if (h + 2) * (w + 2) > 32000:
            # Cells are stored as int16 in the search tables.
            raise UserError(f"level of {h}x{w} cells is too large for the solver (at most 32000 cells)")
        self.height, self.width_orig = h, w
        self.width = w + 2
        self.walls = np.pad(walls, 1, constant_values=True).ravel()
        self.goals = np.pad(goals, 1, constant_values=False).ravel()
        self.box_cells = np.sort(np.flatnonzero(np.pad(boxes, 1, constant_values=False).ravel())).astype(np.int16)
        self.goal_cells = np.flatnonzero(self.goals).astype(np.int64)
        self.player = int((player[0] + 1) * self.width + player[1] + 1)
        self.dist = _push_distances(self.walls, self.goal_cells, self.width)
        # Dead squares: floor that reaches no goal by pushes. Walls are handled apart.
        self.dead = (self.dist.min(axis=0) >= _INF) & ~self.walls if len(self.goal_cells) else ~self.walls

    def cell(self, rc):
        return (rc[0] + 1) * self.width + rc[1] + 1


def _rebuild_moves(prob: _Problem, pushes: list[tuple[int, int]]) -> str:
    """Walk + push string for a list of (box cell, direction) pushes."""
    offs = (-prob.width, prob.width, -1, 1)
    boxes = set(int(c) for c in prob.box_cells)
    player = prob.player
    out: list[str] = []
    for b, d in pushes:
        target = b - offs[d]
        out.append(_walk(prob, boxes, player, target))
        out.append(_DIR_CHARS[d].upper())
        boxes.remove(b)
        boxes.add(b + offs[d])
        player = b
    return "".join(out)


def _walk(prob: _Problem, boxes: set, start: int, target: int) -> str:
    if start == target:
        return ""
    offs = (-prob.width, prob.width, -1, 1)
    prev = {start: (-1, -1)}
    q = deque([start])
    while q:
        c = q.popleft()
        for d, off in enumerate(offs):
            n = c + off
            if n in prev or prob.walls[n] or n in boxes:
                continue
            prev[n] = (c, d)
            if n == target:
                path = []
                while n != start:
                    n, dd = prev[n]
                    path.append(_DIR_CHARS[dd])
                return "".join(reversed(path))
            q.append(n)
    raise RuntimeError("solver internal error: no walk between pushes")  # pragma: no cover


def _initial_deadlock(prob: _Problem) -> str:
    """Reason the start state is already lost, or ""."""
    nb, ng = len(prob.box_cells), len(prob.goal_cells)
    if ng < nb:
        return f"fewer goals ({ng}) than boxes ({nb})"
    boxgrid = np.zeros(prob.walls.shape[0], np.int8)
    boxgrid[prob.box_cells] = 1
    mark = np.zeros_like(boxgrid)
    for b in prob.box_cells:
        if prob.dead[b]:
            return "a box starts on a dead square"
        if not prob.goals[b] and _frozen(int(b), prob.walls, prob.dead, boxgrid, mark, prob.width):
            return "a box starts frozen off a goal"
    if nb and _heuristic_py(prob, prob.box_cells) >= _INF:
        return "boxes cannot all be matched to reachable goals"
    return ""


def _heuristic_py(prob: _Problem, boxes) -> int:
    nb, ng = len(boxes), prob.dist.shape[0]
    m = ng + 1
    return int(_heuristic(np.asarray(boxes, np.int16), prob.dist, np.empty((nb, ng), np.int64),
                          np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64),
                          np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.bool_)))


_ZOB_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _zobrist(ncells: int) -> tuple[np.ndarray, np.ndarray]:
    if ncells not in _ZOB_CACHE:
        rng = np.random.default_rng(0x50C0BA)
        _ZOB_CACHE[ncells] = (rng.integers(0, 2**63, ncells, dtype=np.uint64) * np.uint64(2) + np.uint64(1),
                              rng.integers(0, 2**63, ncells, dtype=np.uint64) * np.uint64(2))
    return _ZOB_CACHE[ncells]


def solve_arrays(walls, goals, boxes, player, time_limit: float = 10.0,
                 node_limit: int = 5_000_000) -> SolveResult:
    """Solve a level given as (H, W) bool arrays and the player's (row, col).

    The caller is responsible for validity (one player on floor, boxes and
    goals on floor); use :func:`solve_level` for a checked :class:`Level`.
    ``node_limit`` bounds the number of distinct states stored.
    """
    _ensure_compiled()  # numba compiles (or loads its cache) outside the time limit
    t0 = time.perf_counter()
    prob = _Problem(walls, goals, boxes, player)
    nb = len(prob.box_cells)
    if nb == 0 or all(prob.goals[b] for b in prob.box_cells):
        return SolveResult("solved", "", 0, 0, 0, 1, time.perf_counter() - t0)
    reason = _initial_deadlock(prob)
    if reason:
        return SolveResult("unsolvable", expansions=0, states=1,
                           seconds=time.perf_counter() - t0, reason=reason)
    ncells = prob.walls.shape[0]
    zob_box, zob_player = _zobrist(ncells)

    cap = 1024
    nodes_boxes = np.empty((cap, nb), np.int16)
    nodes_player = np.empty(cap, np.int16)
    nodes_parent = np.empty(cap, np.int32)
    nodes_from = np.empty(cap, np.int16)
    nodes_dir = np.empty(cap, np.int8)
    nodes_g = np.empty(cap, np.int32)
    nodes_closed = np.zeros(cap, np.bool_)
    nodes_hash = np.empty(cap, np.uint64)
    table = np.full(4 * cap, -1, np.int32)
    heap = np.empty(2 * cap, np.int64)

    # Root state.
    boxgrid = np.zeros(ncells, np.int8)
    boxgrid[prob.box_cells] = 1
    stamp = np.zeros(ncells, np.int32)
    root_player = int(_flood(prob.player, prob.walls, boxgrid, stamp, 1, np.empty(ncells, np.int64), prob.width))
    nodes_boxes[0] = prob.box_cells
    nodes_player[0] = root_player
    nodes_parent[0] = -1
    nodes_g[0] = 0
    nodes_hash[0] = _state_hash(prob.box_cells, root_player, zob_box, zob_player)
    _rebuild_table(table, nodes_hash, 1)
    h0 = _heuristic_py(prob, prob.box_cells)
    heap[0] = (h0 << 47) | ((_G_MAX - 0) << 31) | 0
    counters = np.array([1, 1, 0, -1], np.int64)

    budget = 256
    deadline = t0 + time_limit
    while True:
        if time.perf_counter() > deadline:
            return SolveResult("limit", expansions=int(counters[2]), states=int(counters[0]),
                               seconds=time.perf_counter() - t0, reason=f"time limit {time_limit:g}s")
        status = _search(prob.walls, prob.dead, prob.goals, prob.dist, prob.width, zob_box, zob_player,
                         nodes_boxes, nodes_player, nodes_parent, nodes_from, nodes_dir, nodes_g,
                         nodes_closed, nodes_hash, table, heap, counters, budget, node_limit)
        if status == _GROW:
            n = int(counters[0])
            if nodes_boxes.shape[0] < n + 4 * nb + 1:
                new = 2 * nodes_boxes.shape[0]
                nodes_boxes = _grow(nodes_boxes, new)
                nodes_player = _grow(nodes_player, new)
                nodes_parent = _grow(nodes_parent, new)
                nodes_from = _grow(nodes_from, new)
                nodes_dir = _grow(nodes_dir, new)
                nodes_g = _grow(nodes_g, new)
                nodes_closed = _grow(nodes_closed, new)
                nodes_hash = _grow(nodes_hash, new)
            if table.shape[0] < 2 * (n + 4 * nb) + 1:
                table = np.empty(2 * table.shape[0], np.int32)
                _rebuild_table(table, nodes_hash, n)
            if heap.shape[0] < int(counters[1]) + 4 * nb + 1:
                heap = _grow(heap, 2 * heap.shape[0])
            continue
        if status == _RUNNING:
            budget = min(budget * 2, 32768)
            continue
        break

    exp, states = int(counters[2]), int(counters[0])
    if status == _EXHAUSTED:
        return SolveResult("unsolvable", expansions=exp, states=states, seconds=time.perf_counter() - t0,
                           reason="search space exhausted")
    if status == _NODE_LIMIT:
        return SolveResult("limit", expansions=exp, states=states, seconds=time.perf_counter() - t0,
                           reason=f"node limit {node_limit}")
    pushes: list[tuple[int, int]] = []
    node = int(counters[3])
    while nodes_parent[node] >= 0:
        pushes.append((int(nodes_from[node]), int(nodes_dir[node])))
        node = int(nodes_parent[node])
    pushes.reverse()
    moves = _rebuild_moves(prob, pushes)
    return SolveResult("solved", moves, len(pushes), len(moves), exp, states, time.perf_counter() - t0)


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((n,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    if a.dtype == np.bool_:
        out[a.shape[0]:] = False
    return out


def solve_level(level, time_limit: float = 10.0, node_limit: int = 5_000_000) -> SolveResult:
    """Solve a :class:`~clm.domains.levels.level.Level` push-optimally.

    Raises ``LevelError`` (from ``level.validate()``) for an invalid level.
    """
    level.validate()
    return solve_arrays(level.walls, level.goals, level.boxes, level.player, time_limit, node_limit)


def _solve_chunk(levels: list, time_limit: float, node_limit: int) -> list[SolveResult]:
    return [solve_level(lv, time_limit, node_limit) for lv in levels]


#: the worker processes of the last parallel solve, kept for the next one (a new pool costs each
#: worker a start and the solver's compiled code: about a second)
_POOL: dict[str, Any] = {"jobs": 0, "executor": None}


def _process_pool(n_jobs: int):
    from concurrent.futures import ProcessPoolExecutor

    if _POOL["jobs"] != n_jobs:
        if _POOL["executor"] is not None:
            _POOL["executor"].shutdown()
        # the platform's default start (fork on Linux): a script needs no __main__ guard, and the workers
        # run only the solver's numba code, never torch's or OpenMP's threads that a fork could catch mid-use
        _POOL["executor"] = ProcessPoolExecutor(max_workers=n_jobs, initializer=warmup)
        if not _POOL.get("atexit"):  # shut the pool before the interpreter tears its modules down
            import atexit

            atexit.register(lambda: _POOL["executor"] is not None and _POOL["executor"].shutdown())
            _POOL["atexit"] = True
        _POOL["jobs"] = n_jobs
    return _POOL["executor"]


def _ray_running() -> bool:
    """Whether this process is connected to a Ray instance (``ray.init`` has run);
    the solver never starts one itself."""
    import sys

    ray = sys.modules.get("ray")  # only a process that imported Ray can have initialised it
    return ray is not None and ray.is_initialized()


def solve_levels(levels: Sequence, time_limit: float = 10.0, n_jobs: int = 1,
                 node_limit: int = 5_000_000) -> list[SolveResult]:
    """Solve many levels, in order.

    ``n_jobs > 1`` spreads them over workers: Ray's tasks when this process
    is connected to a Ray instance (``ray.init``; on a cluster, its
    machines'), else a pool of ``n_jobs`` worker processes kept for the next
    call. Each level is solved alone by the same code, so the results equal
    ``n_jobs=1``'s (but for levels that hit ``time_limit``, where a busy
    machine may stop earlier: give ``node_limit`` for results that never
    depend on speed)."""
    levels = list(levels)
    if n_jobs <= 1 or len(levels) < 2:
        return _solve_chunk(levels, time_limit, node_limit)
    n_chunks = min(len(levels), 4 * n_jobs)  # a few chunks per worker: hard levels do not leave workers idle
    chunks = [levels[i::n_chunks] for i in range(n_chunks)]  # strided: hard levels often sit together
    if _ray_running():
        import ray

        task = ray.remote(num_cpus=1)(_solve_chunk)
        parts = ray.get([task.remote(c, time_limit, node_limit) for c in chunks])
    else:
        parts = list(_process_pool(n_jobs).map(_solve_chunk, chunks, [time_limit] * n_chunks,
                                               [node_limit] * n_chunks))
    out: list[Any] = [None] * len(levels)
    for i, part in enumerate(parts):
        out[i::n_chunks] = part
    return out


def difficulty(result: SolveResult) -> dict[str, int | None]:
    """Difficulty figures of one solve: optimal pushes, solution moves, expansions
    (pushes and moves are None unless solved)."""
    return {
        "pushes": result.pushes if result.solved else None,
        "moves": result.n_moves if result.solved else None,
        "expansions": result.expansions,
    }


_COMPILED = False


def _ensure_compiled() -> None:
    global _COMPILED
    if not _COMPILED:
        _COMPILED = True
        warmup()


def warmup() -> None:
    """Compile the solver (numba) on a tiny level, so timings exclude compilation.
    Called on the first solve of a process; calling it again is cheap."""
    global _COMPILED
    _COMPILED = True
    walls = np.array([[1, 1, 1, 1, 1, 1],
                      [1, 0, 0, 0, 0, 1],
                      [1, 0, 0, 0, 0, 1],
                      [1, 1, 1, 1, 1, 1]], bool)
    goals = np.zeros_like(walls)
    goals[1, 4] = True
    boxes = np.zeros_like(walls)
    boxes[1, 2] = True
    solve_arrays(walls, goals, boxes, (1, 1))
