"""The exact solver against a brute-force BFS, and every solution replayed."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from clm.domains.levels.level import Level, LevelError
from clm.domains.levels.solver import difficulty, solve_level, solve_levels

_STEP = {"u": (-1, 0), "d": (1, 0), "l": (0, -1), "r": (0, 1)}


def replay(level: Level, moves: str) -> tuple[bool, int]:
    """Plain-Python simulator: play LURD moves; lowercase must be walks and
    uppercase pushes. Returns (all boxes on goals, pushes)."""
    walls = level.walls
    boxes = {tuple(x) for x in np.argwhere(level.boxes)}
    r, c = level.player
    pushes = 0
    for ch in moves:
        dr, dc = _STEP[ch.lower()]
        nr, nc = r + dr, c + dc
        assert not walls[nr, nc], f"walked into a wall at {(nr, nc)}"
        if (nr, nc) in boxes:
            assert ch.isupper(), "a push must be written in uppercase"
            br, bc = nr + dr, nc + dc
            assert not walls[br, bc] and (br, bc) not in boxes, "blocked push"
            boxes.remove((nr, nc))
            boxes.add((br, bc))
            pushes += 1
        else:
            assert ch.islower(), "a walk must be written in lowercase"
        r, c = nr, nc
    goals = {tuple(x) for x in np.argwhere(level.goals)}
    return boxes <= goals, pushes


def brute_force_pushes(level: Level) -> int | None:
    """Fewest pushes by plain BFS over (boxes, player region) with no pruning;
    None when no solution exists."""
    walls = level.walls
    h, w = walls.shape
    goals = frozenset(tuple(x) for x in np.argwhere(level.goals))

    def region(boxes, start):
        seen = {start}
        q = deque([start])
        while q:
            r, c = q.popleft()
            for dr, dc in _STEP.values():
                n = (r + dr, c + dc)
                if n not in seen and not walls[n] and n not in boxes:
                    seen.add(n)
                    q.append(n)
        return seen

    start_boxes = frozenset(tuple(x) for x in np.argwhere(level.boxes))
    reach = region(start_boxes, level.player)
    start = (start_boxes, min(reach))
    if start_boxes <= goals:
        return 0
    dist = {start: 0}
    q = deque([(start_boxes, reach, 0)])
    while q:
        boxes, reach, d = q.popleft()
        for (br, bc) in boxes:
            for dr, dc in _STEP.values():
                if (br - dr, bc - dc) not in reach:
                    continue
                t = (br + dr, bc + dc)
                if walls[t] or t in boxes:
                    continue
                nb = (boxes - {(br, bc)}) | {t}
                nreach = region(nb, (br, bc))
                key = (nb, min(nreach))
                if key in dist:
                    continue
                dist[key] = d + 1
                if nb <= goals:
                    return d + 1
                q.append((nb, nreach, d + 1))
    return None


def random_room(rng: np.random.Generator, h: int, w: int, n_boxes: int) -> Level:
    walls = np.ones((h, w), bool)
    walls[1:-1, 1:-1] = rng.random((h - 2, w - 2)) < 0.2
    free = [tuple(x) for x in np.argwhere(~walls)]
    while len(free) < 2 * n_boxes + 1:
        walls[1:-1, 1:-1] = False
        free = [tuple(x) for x in np.argwhere(~walls)]
    idx = rng.permutation(len(free))
    goals = np.zeros_like(walls)
    boxes = np.zeros_like(walls)
    for i in idx[:n_boxes]:
        goals[free[i]] = True
    for i in idx[n_boxes:2 * n_boxes]:
        boxes[free[i]] = True
    player = free[idx[2 * n_boxes]]
    return Level(walls, goals, boxes, player)


def test_optimal_against_brute_force_bfs():
    rng = np.random.default_rng(7)
    n_solved = n_unsolvable = n_exhausted = 0
    for i in range(160):
        h, w = (5, 5) if i % 4 == 0 else (6, 6) if i % 4 != 3 else (6, 7)
        nb = 1 + (i % 2) + (1 if i % 8 == 7 else 0)
        level = random_room(rng, h, w, nb)
        want = brute_force_pushes(level)
        got = solve_level(level, time_limit=5)
        if want is None:
            assert got.status == "unsolvable", (level.to_text(), got)
            n_unsolvable += 1
            n_exhausted += got.reason == "search space exhausted"
        else:
            assert got.status == "solved", (level.to_text(), got)
            assert got.pushes == want, (level.to_text(), got.pushes, want)
            ok, pushes = replay(level, got.moves)
            assert ok and pushes == got.pushes and len(got.moves) == got.n_moves
            n_solved += 1
    # The sample must exercise both outcomes, including a full search.
    assert n_solved > 15 and n_unsolvable > 30 and n_exhausted > 0


# Unsolvable, although no box starts on a dead square or frozen: only the
# exhausted search proves it (checked against the brute force too).
_UNSOLVABLE = """\
######
# #  #
# $. #
##@$ #
#   .#
######"""


def test_proven_unsolvable_level():
    level = Level.from_text(_UNSOLVABLE)
    assert brute_force_pushes(level) is None
    res = solve_level(level)
    assert res.status == "unsolvable" and res.reason == "search space exhausted"
    assert res.expansions > 1 and res.moves == "" and res.pushes == -1


def test_solved_level_replays_and_is_optimal():
    text = """\
########
#@     #
# $ $  #
#  #.. #
########"""
    level = Level.from_text(text)
    res = solve_level(level)
    assert res.status == "solved"
    assert res.pushes == brute_force_pushes(level)
    ok, pushes = replay(level, res.moves)
    assert ok and pushes == res.pushes
    assert difficulty(res) == {"pushes": res.pushes, "moves": len(res.moves), "expansions": res.expansions}


def test_limit_outcome_with_tiny_node_limit():
    level = Level.from_text("""\
#########
#@      #
# $ $ $ #
#       #
# . . . #
#########""")
    res = solve_level(level, node_limit=3)
    assert res.status == "limit" and "node limit" in res.reason
    res = solve_level(level, time_limit=0.0)
    assert res.status == "limit" and "time limit" in res.reason and res.moves == ""
    full = solve_level(level)
    assert full.status == "solved" and full.pushes == brute_force_pushes(level)


def test_already_solved_level():
    level = Level.from_text("#####\n#@* #\n#####")
    res = solve_level(level)
    assert res.status == "solved" and res.pushes == 0 and res.moves == ""


def test_invalid_level_raises_level_error():
    walls = np.ones((5, 5), bool)
    walls[1:-1, 1:-1] = False
    boxes = np.zeros((5, 5), bool)
    boxes[2, 2] = boxes[2, 3] = True
    goals = np.zeros((5, 5), bool)
    goals[3, 3] = True
    with pytest.raises(LevelError, match="boxes but"):
        solve_level(Level(walls, goals, boxes, (1, 1)))


def test_boxoban_hard_sample_solved_and_replayed():
    from clm.domains.levels.data import find_boxoban_dir
    from clm.domains.levels.io import read_levels

    root = find_boxoban_dir()
    if root is None or not (root / "hard").is_dir():
        pytest.skip("Boxoban corpus not present (set CLM_BOXOBAN_DIR or place it in ../shared/data/boxoban)")
    levels = read_levels(root / "hard" / "000.txt")[:25]
    results = solve_levels(levels, time_limit=10, n_jobs=2)
    for level, res in zip(levels, results):
        assert res.status == "solved", level.name
        ok, pushes = replay(level, res.moves)
        assert ok and pushes == res.pushes


@pytest.mark.slow
def test_parallel_solves_equal_the_serial_ones_on_processes_and_on_ray(ray_instance, monkeypatch):
    """solve_levels(n_jobs=2): the same results, in the same order, from a process pool and from
    Ray's tasks; a node limit (not a time limit) makes every outcome independent of speed."""
    from clm.domains.levels import solver
    from clm.domains.levels.generator import generate_levels

    levels = generate_levels(24, size=10, n_boxes=4, seed=5)
    key = lambda rs: [(r.status, r.moves, r.pushes, r.expansions) for r in rs]  # noqa: E731
    serial = solve_levels(levels, time_limit=600, node_limit=40)
    assert {r.status for r in serial} >= {"solved", "limit"}  # both outcomes, so order matters
    monkeypatch.setattr(solver, "_ray_running", lambda: False)
    assert key(solve_levels(levels, time_limit=600, node_limit=40, n_jobs=2)) == key(serial)
    monkeypatch.undo()
    assert solver._ray_running()
    assert key(solve_levels(levels, time_limit=600, node_limit=40, n_jobs=2)) == key(serial)
