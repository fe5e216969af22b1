"""Edit searches of the QD grid: the cached judge against the plain judge, targets
near empty cells, the emitters' levels valid, budgets exact, a short training."""

import numpy as np
import pytest
import torch

from clm.domains.levels import levels_to_tiles, tiles_to_levels
from clm.domains.levels.generator import generate_levels
from clm.gan.models import ImageDiscriminator, TileGenerator
from clm.levels_clm.couplings import LevelJudge
from clm.levels_clm.edit_qd import (CachedJudge, goal_score, level_cells, near_empty_targets, rollout,
                                search_edit_agent, search_random_edits, train_edit_agent)
from clm.levels_clm.qd import LatentQDProblem
from clm.levels_clm.qd_grid import QDGrid


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    corpus = generate_levels(30, size=7, n_boxes=1, seed=1, min_pushes=2)
    G = TileGenerator(7, 7, 7, z_dim=4, width=8, arch="mlp")
    D = ImageDiscriminator((7, 7, 7), 8, 0, "mlp", True, True)
    G.eval(), D.eval()
    judge = LevelJudge(levels_to_tiles(corpus), min_novelty=3, solve_time_limit=0.5)
    judge.n_boxes = 1
    return G, D, judge, corpus


def test_cached_judge_equals_the_judge_and_solves_each_layout_once(tiny):
    G, D, judge, corpus = tiny
    levels = generate_levels(6, size=7, n_boxes=1, seed=9, min_pushes=2)
    batch = levels + levels[:3]  # three layouts twice
    cached = CachedJudge(judge)
    got = cached.judge(D, batch)
    want = judge.judge(D, batch)
    for name in ("playable", "pushes", "novelty", "creative"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    # D's minibatch-std layer makes realism depend a little on the rest of the batch
    for name in ("realism", "score"):
        assert np.allclose(getattr(got, name), getattr(want, name), atol=1e-3), name
    assert cached.evaluations == 9 and cached.misses == 6
    cached.judge(D, levels[:2])
    assert cached.evaluations == 11 and cached.misses == 6


def test_targets_are_empty_cells_near_the_start():
    rng = np.random.default_rng(0)
    empty = np.zeros((12, 20), bool)
    empty[5, 7] = True
    t = near_empty_targets(rng, np.array([[5, 5], [0, 0]]), empty, radius=3, tries=200)
    assert t[0].tolist() == [5, 7]  # the one empty cell within 3 bins
    assert (np.abs(t[1]) <= 3).all()  # none near: some cell within the radius
    full = np.ones((12, 20), bool)
    t = near_empty_targets(rng, np.array([[11, 19]] * 50), full, radius=2)
    assert (t >= [9, 17]).all() and (t <= [11, 19]).all()


def test_goal_score_by_hand(tiny):
    G, D, judge, corpus = tiny
    levels = generate_levels(2, size=7, n_boxes=1, seed=11, min_pushes=2)
    j = CachedJudge(judge).judge(D, levels)
    grid = QDGrid("wall_density", min_novelty=0)
    cells = level_cells(grid, levels, j)
    s = goal_score(grid, levels, j, cells)  # at its own cell: distance 0
    assert np.allclose(s, 3.0 + 0.5 * j.realism)
    s2 = goal_score(grid, levels, j, cells + [[2, 0], [0, 0]])
    assert np.isclose(s2[0], 1 + 2 * np.exp(-1.0) + 0.5 * j.realism[0])


@pytest.mark.slow
def test_edit_searches_spend_the_budget_and_keep_levels_valid(tiny):
    G, D, judge, corpus = tiny
    for search in (search_random_edits,):
        p = LatentQDProblem(G, D, CachedJudge(judge), QDGrid("wall_density", min_novelty=3), 150)
        search(p, 0)
        assert p.evaluations == 150
        for lv in p.grid.elites():
            assert lv.problems() == []


@pytest.mark.slow
def test_a_short_training_then_the_agent_search(tiny):
    G, D, judge, corpus = tiny
    J = CachedJudge(judge)
    agent, evals = train_edit_agent(G, D, J, lambda: QDGrid("wall_density", min_novelty=3), episodes=60, seed=0,
                                    max_edits=3, num_envs=8)
    assert evals == J.evaluations > 60  # every start and every edited level counted
    p = LatentQDProblem(G, D, CachedJudge(judge), QDGrid("wall_density", min_novelty=3), 200)
    search_edit_agent(p, 0, agent=agent, max_edits=3)
    assert p.evaluations == 200 and p.grid.filled > 0
    tiles = rollout(agent, levels_to_tiles(corpus[:8]), np.zeros((8, 2), np.int64), (12, 20), 3, 0.0, 4)
    assert all(lv.problems() == [] for lv in tiles_to_levels(tiles))


@pytest.mark.slow
def test_clm_run_with_the_edit_coupling(tmp_path, capsys):
    import json

    from clm.cli.main import main
    from clm.domains.levels import read_levels

    out = tmp_path / "run"
    tiny = ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4", "eval_every=2",
            "eval_levels=10", "samples_per_round=16", "designer_search=false", "player.learning_starts=64",
            "player.conv_channels=[8]", "player.hidden=[32]", "gan.g_width=8", "gan.d_width=8",
            "player.pretrain_steps=50", "edit_search=true", "edits_per_round=32", "edit_max_boxes=2",
            "report=false"]
    assert main(["run", "--out", str(out), "--json", *tiny]) == 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    edits = [r for r in rows if "edit_playable_fraction" in r]
    assert len(edits) == 2 and all(0 <= r["edit_frontier"] <= 32 for r in edits)
    # G's 16 samples and the 32 edited levels of each round were judged
    assert rows[-1]["g_evaluations"] == 2 * (16 + 32)
    records = [json.loads(r) for r in (out / "levels" / "archive.jsonl").read_text().splitlines()]
    archived = read_levels(out / "levels" / "archive.txt")
    assert all(lv.problems() == [] and lv.n_boxes <= 2 for lv in archived)
    assert {r["source"] for r in records} <= {"generator", "edits"}
    # the report's edit episodes: every edit judged is counted, the shown ones are valid and replayed by the judge
    from clm.domains.levels.solver import solve_level
    from clm.levels_clm.edit_episodes import read_edit_episodes

    rec = read_edit_episodes(out / "levels" / "edit_episodes.json").value
    assert rec.judged == 2 * 32 and rec.playable == round(sum(32 * r["edit_playable_fraction"] for r in edits))
    assert 1 <= len(rec.episodes) <= 12
    for i, ep in enumerate(rec.episodes):
        before, after = rec.levels(i)
        assert after.n_boxes <= 2 and before.problems() == [] and after.problems() == []
        solved = solve_level(after, time_limit=1.0)
        assert ep["playable"] == (solved.solved and solved.pushes > 0)
        assert ep["pushes_after"] == (solved.pushes if ep["playable"] else -1)
    # a resumed run continues the record from its checkpoint
    assert main(["run", "--resume", str(out), "--json", "rounds=3", "report=false"]) == 0
    again = read_edit_episodes(out / "levels" / "edit_episodes.json").value
    assert again.judged == 3 * 32 and again.playable >= rec.playable
