"""The QD grid against direct computation, and every QD search's budget on a tiny untrained G."""

import numpy as np
import pytest
import torch

from clm.core.errors import UserError
from clm.domains.levels import Level, levels_to_tiles
from clm.domains.levels.generator import generate_levels
from clm.gan.models import ImageDiscriminator, TileGenerator
from clm.levels_clm.config import CLMConfig
from clm.levels_clm.couplings import Judgement, LevelJudge
from clm.levels_clm.designer import LatentDesignerEnv
from clm.levels_clm.designer import designer_observation
from clm.levels_clm.qd import run_qd_search
from clm.levels_clm.searches import SEARCHES
from clm.levels_clm.qd_grid import QDGrid, box_goal_distance, wall_density

# 7x7, interior 5x5 = 25 cells. A: 4 interior walls, box (2, 2), goal (2, 5): distance 3.
A = Level.from_text("""
#######
#@   ##
# $  .#
# #   #
#   # #
# #   #
#######""")
# B: no interior wall, box (3, 2), goal (5, 5): distance 2 + 3 = 5.
B = Level.from_text("""
#######
#@    #
#     #
# $   #
#     #
#    .#
#######""")


def judgement(pushes, realism=None, novelty=None, score=None, playable=None) -> Judgement:
    """A hand-made judgement of len(pushes) levels."""
    pushes = np.asarray(pushes)
    n = len(pushes)
    playable = pushes > 0 if playable is None else np.asarray(playable)
    return Judgement(realism=np.full(n, 0.5) if realism is None else np.asarray(realism, float),
                     playable=playable, pushes=pushes,
                     novelty=np.full(n, 5.0) if novelty is None else np.asarray(novelty, float),
                     score=np.full(n, 3.0) if score is None else np.asarray(score, float),
                     creative=np.zeros(n, bool))


def test_descriptors_of_hand_made_levels():
    assert wall_density([A, B]) == pytest.approx([4 / 25, 0.0])
    assert box_goal_distance([A, B]) == pytest.approx([3.0, 5.0])
    two_boxes = Level.from_text("""
#######
#@    #
# $ $.#
#     #
#.    #
#     #
#######""", validate=False)
    # box (2, 2): nearest goal (4, 1) or (2, 5), both 3 away; box (2, 4): goal (2, 5), 1 away
    assert box_goal_distance([two_boxes]) == pytest.approx([2.0])
    grid = QDGrid("realism")
    j = judgement([4, 7], realism=[0.25, 0.95])
    assert np.array_equal(grid.descriptors([A, B], j), [[4, 0.25], [7, 0.95]])


def test_cells_match_pyribs_grid_archive():
    from ribs.archives import GridArchive

    grid = QDGrid("wall_density", bins=(12, 10), ranges=((0.5, 12.5), (0.0, 0.6)))
    ribs = GridArchive(solution_dim=1, dims=grid.bins, ranges=grid.ranges)
    rng = np.random.default_rng(0)
    m = np.stack([rng.integers(-2, 16, 500).astype(float), rng.uniform(-0.1, 0.7, 500)], axis=1)
    m[:20, 1] = np.arange(20) * 0.06  # bin edges of the second axis
    assert np.array_equal(np.ravel_multi_index(grid.cells(m).T, grid.bins), ribs.index_of(m))


def test_coverage_and_qd_score_of_a_hand_filled_grid():
    grid = QDGrid("realism", bins=(4, 2), ranges=((0.5, 4.5), (0.0, 1.0)), min_novelty=3)
    levels = [A, B, A, B, A]
    j = judgement(pushes=[1, 2, 2, 4, 3], realism=[0.1, 0.9, 0.8, 0.2, 0.6],
                  novelty=[3, 3, 9, 4, 2],  # the last is not novel enough
                  score=[2.5, 3.0, 3.5, 2.2, 3.9])
    assert grid.add(levels, j) == 3  # cells, not levels: two levels share one
    expected = np.full((4, 2), np.nan)
    expected[0, 0], expected[1, 1], expected[3, 0] = 2.5, 3.5, 2.2  # (2, 0.9) and (2, 0.8) share a cell: 3.5 wins
    assert np.array_equal(grid.heatmap(), expected, equal_nan=True)
    assert grid.filled == 3 and grid.coverage == pytest.approx(3 / 8)
    assert grid.qd_score == pytest.approx(2.5 + 3.5 + 2.2)
    assert grid.offered == 5


def test_a_cell_keeps_the_better_level():
    grid = QDGrid("wall_density")
    A2 = Level(A.walls, A.goals, A.boxes, A.player)  # the same layout as another object: the same cell
    assert grid.add([A], judgement([3], score=[2.5])) == 1
    assert grid.add([A2], judgement([3], score=[2.4])) == 0  # worse: the elite stays
    assert grid.add([A2], judgement([3], score=[2.5])) == 0  # a tie keeps the older
    cell = tuple(grid.cells(grid.descriptors([A], judgement([3])))[0])
    assert grid.level_at(cell) is A
    assert grid.add([A2], judgement([3], score=[3.25])) == 1
    assert grid.quality[cell] == 3.25 and grid.level_at(cell) is A2
    assert grid.add([B], judgement([3], score=[2.0])) == 1  # another wall density: another cell
    assert grid.filled == 2 and grid.qd_score == pytest.approx(3.25 + 2.0)
    gains = grid.offer([A, A], judgement([3, 3], score=[3.5, 4.0]))
    assert gains == pytest.approx([0.25, 0.75])  # pyribs: each against the elite before the batch
    assert grid.quality[cell] == 4.0 and grid.qd_score == pytest.approx(4.0 + 2.0)


def test_grid_state_round_trips_with_its_elites():
    grid = QDGrid("realism", bins=(4, 2), ranges=((0.5, 4.5), (0.0, 1.0)), min_novelty=3)
    grid.add([A, B], judgement(pushes=[1, 4], realism=[0.1, 0.9], novelty=[3, 5], score=[2.5, 3.0]))
    again = QDGrid("realism", bins=(4, 2), ranges=((0.5, 4.5), (0.0, 1.0)), min_novelty=3)
    again.load_state_dict(grid.state_dict())
    assert np.array_equal(again.heatmap(), grid.heatmap(), equal_nan=True) and again.offered == 2
    assert [lv.key() for lv in again.elites()] == [lv.key() for lv in grid.elites()] == [A.key(), B.key()]
    with pytest.raises(UserError, match="resume with the config"):
        QDGrid("realism", bins=(3, 2), ranges=((0.5, 4.5), (0.0, 1.0))).load_state_dict(grid.state_dict())


def test_ineligible_levels_never_enter():
    grid = QDGrid("wall_density")
    j = judgement([0, 5, 5], novelty=[9, 2, 9], playable=[False, True, False])
    assert grid.add([A, A, B], j) == 0 and grid.filled == 0 and grid.qd_score == 0.0


def test_bad_names_and_shapes_are_user_errors():
    with pytest.raises(UserError, match="wall_density, box_goal_distance, realism"):
        QDGrid("walls")
    with pytest.raises(UserError, match="the first axis is always pushes"):
        QDGrid("pushes")
    with pytest.raises(UserError, match=">= 1"):
        QDGrid("realism", bins=(12, 0))
    with pytest.raises(UserError, match="low < high"):
        QDGrid("realism", ranges=((0.5, 12.5), (1.0, 0.0)))
    with pytest.raises(UserError, match="two bin counts"):
        QDGrid("realism", bins=(12,))
    with pytest.raises(UserError) as e:
        run_qd_search("annealing", None, None, None, 10, 0)
    for name in SEARCHES:
        assert name in str(e.value)


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny G and D, a judge over a small corpus and an untrained designer."""
    from dataclasses import replace

    from clm.agents.dqn import DQN

    torch.manual_seed(0)
    corpus = generate_levels(30, size=7, n_boxes=1, seed=1, min_pushes=2)
    G = TileGenerator(7, 7, 7, z_dim=4, width=8, arch="mlp")
    D = ImageDiscriminator((7, 7, 7), 8, 0, "mlp", True, True)
    G.eval(), D.eval()
    judge = LevelJudge(levels_to_tiles(corpus), min_novelty=3, solve_time_limit=0.5)
    judge.n_boxes = 1
    env = LatentDesignerEnv(G, D, judge, None, num_envs=4, seed=0)
    designer = DQN(replace(CLMConfig().designer, num_envs=4, learning_starts=8, total_steps=100), envs=env)
    return G, D, judge, designer


@pytest.mark.parametrize("name", list(SEARCHES))
@pytest.mark.slow
def test_each_search_spends_exactly_its_budget(tiny, name):
    G, D, judge, designer = tiny
    budget = 37  # divides no batch size: the last batch is cut
    before = judge.evaluations
    p = run_qd_search(name, G, D, judge, budget, seed=0, second="box_goal_distance", designer=designer)
    assert p.evaluations == budget and p.grid.offered == budget and judge.evaluations - before == budget
    assert p.curve[-1][0] == budget and 0.0 <= p.grid.coverage <= 1.0
    assert designer.envs.judge is judge  # the search used an env of its own


def test_designer_observation_is_the_envs(tiny):
    G, D, judge, _ = tiny
    env = LatentDesignerEnv(G, D, judge, None, num_envs=4, seed=3)
    obs, _ = env.reset(seed=3)
    assert np.array_equal(designer_observation(env._z, env._j, env._t, env.horizon), obs)


