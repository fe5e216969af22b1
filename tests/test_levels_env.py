"""Sokoban simulators: rules by hand, numpy/numba and torch batches against
the plain-Python reference, gymnasium conformance, level sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from clm.core.errors import UserError
from clm.domains.levels import Level, boxoban_split, find_boxoban_dir, parse_levels, read_levels, write_levels
from clm.domains.levels.env import SokobanEnv, SokobanVecEnv
from clm.domains.levels.sim import ReferenceSokoban, TorchSokobanBatch

UP, DOWN, LEFT, RIGHT = range(4)


def random_level(rng: np.random.Generator, h: int, w: int, border: bool = True, name: str = "") -> Level:
    """A random room, dense with boxes so that pushes, blocked pushes and
    boxes on and off goals all happen often. Without ``border`` the room
    touches the grid's edge (not a valid level, but the simulators must
    still treat the edge as a wall)."""
    walls = rng.random((h, w)) < 0.15
    if border:
        walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    free = np.argwhere(~walls)
    k = int(rng.integers(1, max(2, len(free) // 4)))
    pick = rng.permutation(len(free))
    boxes = np.zeros((h, w), bool)
    goals = np.zeros((h, w), bool)
    boxes[tuple(free[pick[:k]].T)] = True
    # Goals partly under boxes (box on goal), partly elsewhere (maybe under the player).
    g = rng.permutation(len(free))[:k]
    goals[tuple(free[g].T)] = True
    player_cells = free[pick[k:]]
    player = tuple(int(v) for v in player_cells[rng.integers(len(player_cells))])
    return Level(walls, goals, boxes, player, name=name)


def sampler_of(h: int, w: int, border: bool = True):
    def sample(rng: np.random.Generator, n: int) -> list[Level]:
        return [random_level(rng, h, w, border) for _ in range(n)]

    return sample


# ------------------------------------------------------------ rules by hand
def play(text: str, actions: list[int]):
    env = SokobanEnv([Level.from_text(text, validate=False)])
    env.reset(seed=0)
    out = [env.step(a) for a in actions]
    return env, out


def test_push_onto_goal_solves_with_bonus():
    env, out = play("#####\n#@$.#\n#####", [RIGHT])
    obs, reward, terminated, truncated, info = out[0]
    assert reward == pytest.approx(-0.1 + 1 + 10)
    assert terminated and not truncated and info["solved"]
    assert env.level.to_text() == "#####\n# @*#\n#####"
    assert obs.argmax(0)[1, 2] == 5 and obs.argmax(0)[1, 3] == 4


def test_push_off_goal_blocked_by_box_and_wall():
    env, out = play("########\n#@*  $.#\n########", [RIGHT, RIGHT, RIGHT, UP, LEFT])
    rewards = [o[1] for o in out]
    assert rewards == pytest.approx([-1.1, -0.1, -0.1, -0.1, -0.1])
    # Third push is blocked by the box at column 5: nothing moves.
    # Then the wall above stops the player, and the last move walks onto the goal.
    assert env.level.to_text() == "########\n# + $$.#\n########"
    assert not any(o[2] for o in out)


def test_walk_onto_goal_and_off_keeps_goal():
    env, _ = play("######\n#@. $#\n#  . #\n######", [RIGHT])
    assert env.level.to_text() == "######\n# + $#\n#  . #\n######"
    env.step(RIGHT)
    assert env.level.to_text() == "######\n# .@$#\n#  . #\n######"


def test_truncation_after_max_steps():
    env = SokobanEnv([Level.from_text("#####\n#@$.#\n#   #\n#####")], max_steps=5)
    env.reset(seed=0)
    results = [env.step(DOWN if i % 2 == 0 else UP) for i in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)


def test_edge_of_grid_blocks_like_a_wall():
    lv = Level(np.zeros((1, 3), bool), np.array([[0, 0, 1]], bool), np.array([[0, 1, 0]], bool), (0, 0))
    env = SokobanEnv([lv])
    env.reset(seed=0)
    assert env.step(LEFT)[1] == pytest.approx(-0.1)
    assert env.step(UP)[1] == pytest.approx(-0.1)
    assert env.step(RIGHT)[1] == pytest.approx(10.9)


# ------------------------------------------------ batches against reference
def _check_batch_against_reference(make_batch, steps: int, n: int, seed: int) -> int:
    """Drive a batch and per-env references with the same random actions;
    compare tiles, rewards, terminated, truncated, final obs at every step.
    Returns how many levels were played."""
    batch, reset, step, current_levels = make_batch()
    rng = np.random.default_rng(seed)
    obs = reset()
    refs = [ReferenceSokoban(lv, max_steps=batch.max_steps) for lv in current_levels()]
    played = n
    for t in range(steps):
        actions = rng.integers(0, 4, n)
        obs, reward, term, trunc, info = step(actions)
        ends = np.zeros(n, bool)
        want_reward = np.zeros(n)
        want_term = np.zeros(n, bool)
        want_trunc = np.zeros(n, bool)
        for i, ref in enumerate(refs):
            want_reward[i], want_term[i], want_trunc[i] = ref.step(int(actions[i]))
        ends = want_term | want_trunc
        np.testing.assert_allclose(reward, want_reward, atol=1e-5, err_msg=f"step {t}")
        assert np.array_equal(term, want_term) and np.array_equal(trunc, want_trunc), f"step {t}"
        assert np.array_equal(info["_final_obs"], ends) and np.array_equal(info["solved"], want_term)
        ref_tiles = np.stack([ref.tiles() for ref in refs])
        oh = obs.argmax(1)
        final = info["final_obs"]
        assert np.array_equal(final[ends].argmax(1), ref_tiles[ends]), f"final obs, step {t}"
        assert np.all(final[ends].sum(1) == 1)
        assert np.array_equal(oh[~ends], ref_tiles[~ends]), f"obs, step {t}"
        assert np.all(obs.sum(1) == 1), "one-hot must have exactly one channel per cell"
        if ends.any():
            new_levels = current_levels()
            for i in np.flatnonzero(ends):
                refs[i] = ReferenceSokoban(new_levels[i], max_steps=batch.max_steps)
                assert np.array_equal(oh[i], refs[i].tiles()), "autoreset obs must be the new level's first obs"
            played += int(ends.sum())
    return played


@pytest.mark.parametrize("shape, border", [((6, 7), True), ((5, 5), False), ((10, 10), True)])
def test_numba_batch_matches_reference(shape, border):
    n = 64

    def make():
        env = SokobanVecEnv(sampler_of(*shape, border), n, max_steps=20, seed=3)
        return env, lambda: env.reset(seed=3)[0], env.step, lambda: env.levels

    played = _check_batch_against_reference(make, steps=250, n=n, seed=11)
    assert played >= 800


@pytest.mark.parametrize("shape, border", [((6, 7), True), ((5, 5), False)])
def test_torch_batch_matches_reference(shape, border):
    n = 64
    torch.set_num_threads(1)

    def make():
        b = TorchSokobanBatch(sampler_of(*shape, border), n, device="cpu", max_steps=20, seed=3)

        def step(actions):
            obs, reward, term, trunc, info = b.step(torch.as_tensor(actions))
            info = {k: v.cpu().numpy() for k, v in info.items()}
            return obs.cpu().numpy(), reward.cpu().numpy(), term.cpu().numpy(), trunc.cpu().numpy(), info

        def levels():
            from clm.domains.levels import tiles_to_levels

            return tiles_to_levels(b.tiles.view(n, *b.shape).cpu().numpy().astype(np.int8))

        return b, lambda: b.reset().cpu().numpy(), step, levels

    played = _check_batch_against_reference(make, steps=200, n=n, seed=12)
    assert played >= 600


def test_boxoban_batch_matches_reference():
    if find_boxoban_dir() is None:
        pytest.skip("Boxoban corpus not present (set CLM_BOXOBAN_DIR or place it at ../shared/data/boxoban)")
    levels = read_levels(boxoban_split("unfiltered/test"))
    n = 100

    def make():
        env = SokobanVecEnv(levels, n, max_steps=30, sequential=True, seed=0)
        return env, lambda: env.reset(seed=0)[0], env.step, lambda: env.levels

    played = _check_batch_against_reference(make, steps=300, n=n, seed=5)
    assert played >= 1000


# -------------------------------------------------------- gymnasium, sources
@pytest.mark.parametrize("obs", ["onehot", "rgb"])
def test_single_env_passes_gymnasium_checker(obs):
    env = SokobanEnv(sampler_of(6, 7), obs=obs)
    check_env(env, skip_render_check=True)
    o, _ = env.reset(seed=1)
    assert env.observation_space.contains(o)
    if obs == "rgb":
        assert o.shape == (48, 56, 3)


def test_vec_env_spaces_and_same_step_autoreset():
    lv = Level.from_text("#####\n#@$.#\n#####")
    env = SokobanVecEnv([lv], 3)
    assert env.metadata["autoreset_mode"].value == "SameStep"
    assert env.single_observation_space.shape == (7, 3, 5)
    assert env.observation_space.shape == (3, 7, 3, 5) and env.action_space.shape == (3,)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, term, trunc, info = env.step(np.array([RIGHT, LEFT, RIGHT]))
    assert list(term) == [True, False, True] and list(info["solved"]) == [True, False, True]
    assert info["final_obs"].shape == (3, 7, 3, 5)
    assert info["final_obs"][0].argmax(0)[1, 3] == 4  # box on goal in the last obs
    assert np.array_equal(obs[0], lv.to_onehot().astype(np.uint8))  # already the next level
    with pytest.raises(ValueError, match="0..3"):
        env.step(np.array([0, 4, 1]))


def test_copy_flag_controls_buffer_reuse():
    lv = Level.from_text("######\n#@ $.#\n######")
    fast = SokobanVecEnv([lv], 2, copy=False)
    o1, _ = fast.reset(seed=0)
    o2 = fast.step(np.array([RIGHT, RIGHT]))[0]
    assert o1 is o2
    safe = SokobanVecEnv([lv], 2)
    o1, _ = safe.reset(seed=0)
    o2 = safe.step(np.array([RIGHT, RIGHT]))[0]
    assert not np.shares_memory(o1, o2) and not np.array_equal(o1, o2)


def test_sources_file_list_sampler_and_set_source(tmp_path):
    levels = parse_levels("; 0\n#####\n#@$.#\n#####\n; 1\n#####\n#.$@#\n#####\n")
    write_levels(tmp_path / "l.txt", levels)
    env = SokobanVecEnv(tmp_path / "l.txt", 4, sequential=True)
    env.reset(seed=0)
    assert [lv.key() for lv in env.levels] == [levels[i % 2].key() for i in range(4)]
    calls = []

    def sampler(rng, n):
        calls.append(n)
        return [levels[1]] * n

    env.set_source(sampler)
    obs, *_ = env.step(np.array([RIGHT] * 4))  # envs 0 and 2 solve, 1 and 3 hit a wall
    assert calls[-1] == 2
    assert [lv.key() for lv in env.levels][0] == levels[1].key()
    with pytest.raises(UserError, match="holds"):
        env.set_source([Level.from_text("######\n#@$.##\n######")])
    with pytest.raises(UserError, match="empty"):
        SokobanVecEnv([], 2)
    single = SokobanEnv(levels)
    o, _ = single.reset(options={"level": levels[1]})
    assert single.level.key() == levels[1].key()


def test_bad_sampler_is_reported():
    with pytest.raises(UserError, match="returned 0 levels"):
        SokobanVecEnv(lambda rng, n: [], 2)


def test_saved_env_state_continues_exactly():
    pool = sampler_of(6, 7)(np.random.default_rng(9), 50)
    env = SokobanVecEnv(pool, 16, max_steps=10, seed=4)
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.integers(0, 4, 16))
    twin = SokobanVecEnv(pool[:3], 16, max_steps=10, seed=99)  # other levels and seed: the state replaces them
    twin.load_state_dict(env.state_dict())
    for _ in range(30):
        a = rng.integers(0, 4, 16)
        got, want = twin.step(a), env.step(a)
        for g, w in zip(got[:4], want[:4]):
            assert np.array_equal(g, w)
        assert np.array_equal(got[4]["final_obs"], want[4]["final_obs"])
    assert np.array_equal(twin._state.obs.argmax(1), twin._state.tiles)
