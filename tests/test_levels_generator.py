"""The classic generator: valid, solvable, not trivial, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from clm.core.errors import UserError
from clm.domains.levels.generator import LevelSampler, generate_level, generate_levels
from clm.domains.levels.solver import solve_level

from test_levels_solver import brute_force_pushes, replay


def test_generated_levels_are_valid_solvable_and_not_trivial():
    levels = generate_levels(12, size=10, n_boxes=4, seed=3, min_pushes=6)
    assert len(levels) == 12
    for lv in levels:
        lv.validate()
        assert lv.shape == (10, 10) and lv.n_boxes == 4 and lv.n_goals == 4
        assert not (lv.boxes & lv.goals).any(), "no box may start on a goal by default"
        assert lv.walls[0].all() and lv.walls[-1].all() and lv.walls[:, 0].all() and lv.walls[:, -1].all()
        res = solve_level(lv)
        assert res.status == "solved" and res.pushes >= 6
        ok, pushes = replay(lv, res.moves)
        assert ok and pushes == res.pushes


def test_deterministic_for_a_seed():
    a = generate_levels(4, seed=11)
    b = generate_levels(4, seed=11)
    c = generate_levels(4, seed=12)
    assert [x.key() for x in a] == [x.key() for x in b]
    assert [x.key() for x in a] != [x.key() for x in c]
    assert len({x.key() for x in a}) == 4


def test_small_levels_match_brute_force():
    # Small generated levels: solver pushes equal a plain BFS (and they exist).
    rng = np.random.default_rng(5)
    for _ in range(8):
        lv = generate_level(rng, size=(6, 7), n_boxes=2, min_pushes=2)
        assert solve_level(lv).pushes == brute_force_pushes(lv)


def test_sampler_is_a_level_source():
    sampler = LevelSampler(size=(8, 8), n_boxes=2, min_pushes=3)
    got = sampler(np.random.default_rng(0), 3)
    assert len(got) == 3 and all(lv.shape == (8, 8) and lv.n_boxes == 2 for lv in got)


@pytest.mark.parametrize("size,boxes,match", [
    ((2, 10), 1, "too small"),
    ((4, 4), 4, "do not fit"),
    ((10, 10), 0, "at least 1"),
])
def test_impossible_requests_raise_user_error(size, boxes, match):
    with pytest.raises(UserError, match=match):
        generate_level(np.random.default_rng(0), size=size, n_boxes=boxes)


def test_sampler_feeds_the_env_and_solutions_replay_there():
    env_mod = pytest.importorskip("clm.domains.levels.env")
    sampler = LevelSampler(size=(8, 8), n_boxes=2, min_pushes=3)
    env = env_mod.SokobanEnv(sampler)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7, 8, 8)
    level = sampler(np.random.default_rng(1), 1)[0]
    env.reset(options={"level": level})
    res = solve_level(level)
    terminated = False
    for i, ch in enumerate(res.moves):
        _, _, terminated, truncated, _ = env.step("udlr".index(ch.lower()))
        assert not truncated
        assert terminated == (i == len(res.moves) - 1)
    assert terminated
