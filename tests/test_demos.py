"""Solver demonstrations and DQfD: checked against direct computations, and
one short learning test."""

import numpy as np
import pytest
import torch

from clm.agents.dqn import DQN, DQNConfig
from clm.agents.replay import UniformReplay
from clm.domains.levels import Level, levels_to_tiles
from clm.domains.levels.demos import SYMMETRIES, solver_demonstrations, transform_actions, transform_tiles
from clm.domains.levels.env import SokobanVecEnv
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.sim import BatchState
from clm.domains.levels.solver import solve_level


@pytest.fixture(scope="module")
def levels():
    return generate_levels(12, size=7, n_boxes=1, seed=5, min_pushes=2)


def test_demonstrations_replay_the_optimal_solution(levels):
    d = solver_demonstrations(levels)
    assert d.levels_solved == len(levels) and d.levels_skipped == 0
    assert d.n_episodes == len(levels)
    lengths = [solve_level(lv).n_moves for lv in levels]
    assert len(d) == sum(lengths)
    ends = np.flatnonzero(d.episode_end)
    assert np.array_equal(ends + 1, np.cumsum(lengths))
    # one box: every step costs 0.1, the last one puts the box on its goal (+1) and solves (+10)
    assert np.allclose(d.rewards[ends], 10.9) and d.terminated[ends].all() and d.terminated.sum() == len(levels)
    # each episode starts at its level and each step's next_obs is the next step's obs
    first = np.concatenate([[0], ends[:-1] + 1])
    start_tiles = levels_to_tiles(levels)
    assert np.array_equal(d.obs[first].argmax(1), start_tiles)
    inner = np.setdiff1d(np.arange(len(d) - 1), ends)
    assert np.array_equal(d.next_obs[inner], d.obs[inner + 1])


def test_symmetric_demonstrations_solve_the_transformed_levels(levels):
    d = solver_demonstrations(levels[:4], symmetries=True)
    assert d.n_episodes == 4 * 8 and d.terminated.sum() == 32


@pytest.mark.parametrize("sym", SYMMETRIES)
def test_symmetry_commutes_with_a_step(levels, sym):
    """Transform-then-step equals step-then-transform, for every action."""
    tiles = levels_to_tiles(levels)
    for a in range(4):
        s1 = BatchState(len(tiles), tiles.shape[1:])
        s1.load(np.arange(len(tiles)), tiles)
        s1.step(np.full(len(tiles), a))
        t = transform_tiles(tiles, sym)
        s2 = BatchState(len(t), t.shape[1:])
        s2.load(np.arange(len(t)), t)
        s2.step(transform_actions(np.full(len(t), a), sym))
        assert np.array_equal(s2.tiles, transform_tiles(s1.tiles.copy(), sym))
        assert np.allclose(s1.reward, s2.reward)


def test_unsolvable_level_gives_no_episode():
    blocked = Level.from_text("######\n#$  .#\n#@   #\n######")  # the box sits in a dead corner
    d = solver_demonstrations([blocked])
    assert d.levels_skipped == 1 and len(d) == 0


def test_replay_extend_n_step_returns_match_a_direct_sum():
    buf = UniformReplay(50, 1, (1,), n_step=3, gamma=0.5)
    # two episodes: lengths 4 (terminated) and 2 (truncated)
    r = np.array([1, 2, 3, 4, 5, 6], np.float32)
    term = np.array([0, 0, 0, 1, 0, 0], bool)
    end = np.array([0, 0, 0, 1, 0, 1], bool)
    obs = np.arange(6, dtype=np.float32)[:, None]
    buf.extend(obs, np.zeros(6, np.int64), r, obs + 1, term, end)
    ret, disc, rows = buf.n_step_targets(np.arange(6))
    expect = [1 + .5 * 2 + .25 * 3, 2 + .5 * 3 + .25 * 4, 3 + .5 * 4, 4, 5 + .5 * 6, 6]
    assert np.allclose(ret, expect)
    assert np.allclose(disc, [.125, 0, 0, 0, .25, .5])  # terminated windows do not bootstrap
    assert list(rows) == [2, 3, 3, 3, 5, 5]


def test_margin_loss_matches_hand_computation():
    agent = DQN(DQNConfig(hidden=(8,), demo_fraction=0.25, learning_starts=10**6))
    q = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    expert = torch.tensor([1, 0])
    # row 0: max(1 + .8, 2) - 2 = 0; row 1: max(3, .5 + .8) - 3 = 0 -> both 0
    assert float(agent.learner.margin_loss(q, expert)) == pytest.approx(0.0)
    expert = torch.tensor([0, 1])
    # row 0: max(1, 2.8) - 1 = 1.8; row 1: max(3.8, .5) - .5 = 3.3
    assert float(agent.learner.margin_loss(q, expert)) == pytest.approx((1.8 + 3.3) / 2)


def test_demonstrations_need_the_switch_and_the_shape(levels):
    env = SokobanVecEnv(levels, num_envs=2, seed=0)
    agent = DQN(DQNConfig(env_id="sokoban", num_envs=2, network="conv", conv_channels=(4,), hidden=(8,)), envs=env)
    d = solver_demonstrations(levels[:2])
    with pytest.raises(Exception, match="demo_fraction"):
        agent.add_demonstrations(d.obs, d.actions, d.rewards, d.next_obs, d.terminated, d.episode_end)


@pytest.mark.slow
def test_dqfd_pretraining_learns_the_demonstrated_levels(levels):
    """Pre-training on demonstrations alone makes the greedy policy solve the
    demonstrated levels (a random policy solves few of them)."""
    from clm.levels_clm.couplings import player_solve_rate

    torch.manual_seed(0)
    train = levels[:6]
    env = SokobanVecEnv(train, num_envs=4, seed=0)
    cfg = DQNConfig(env_id="sokoban", num_envs=4, network="conv", conv_channels=(16,), hidden=(64,), dueling=True,
                    n_step=3, gamma=0.97, lr=1e-3, batch_size=64, demo_fraction=0.25, pretrain_steps=1000,
                    target_update_interval=256, train_freq=4, gradient_steps=1)
    agent = DQN(cfg, envs=env)
    before = player_solve_rate(agent.greedy_actions, train)
    d = solver_demonstrations(train, symmetries=True)
    assert agent.add_demonstrations(d.obs, d.actions, d.rewards, d.next_obs, d.terminated, d.episode_end) == len(d)
    agent.pretrain()
    assert agent.gradient_steps == 1000
    after = player_solve_rate(agent.greedy_actions, train)
    assert after >= 0.8 > before
    # then training mixes both buffers: a quarter of each batch is demonstrations
    for _ in range(300):
        agent.collect_step()
    assert agent.gradient_steps > 1000 and agent.learner.demo_rows() == 16
