"""The art domain's canvas env: actions by hand, rewards against D's scores,
same-step autoreset, episode records, the gymnasium checker, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from clm.core.errors import UserError
from clm.domains.images.canvas import BRUSH, CanvasEnv, CanvasVecEnv, action_names, fragment_windows


def mean_realism(canvases: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for D: the brighter the canvas, the 'realer'."""
    return canvases.reshape(len(canvases), -1).mean(1)


def bright_bonus(canvases: np.ndarray) -> np.ndarray:
    return (canvases > 0).reshape(len(canvases), -1).sum(1).astype(float)


def shifted_propose(canvases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A deterministic stand-in for G: proposals made from the canvas, plus a
    known ramp so that fresh proposals on a blank canvas are not blank."""
    n, _, s, _ = canvases.shape
    ramp = np.linspace(-1, 1, s * s, dtype=np.float32).reshape(1, 1, s, s)
    return np.stack([np.clip(np.roll(canvases, k, axis=-1) + ramp + 0.1 * k, -1, 1) for k in range(2)], axis=1)


def test_default_layout_has_50_actions_with_names():
    env = CanvasVecEnv()
    assert env.n_actions == 2 * 9 + 2 * 16 == 50
    assert env.single_action_space.n == 50 and env.action_space.shape == (8,)
    assert env.single_observation_space.shape == (4, 16, 16)
    assert CanvasEnv().n_actions == 50
    names = action_names(env)
    assert len(names) == 50 and len(set(names)) == 50
    assert names[0] == "fragment 0 at (0,0)" and names[9 + 5] == "fragment 1 at (4,8)"
    assert names[18] == "paint block (0,0)" and names[18 + 16 + 7] == "erase block (1,3)"
    assert fragment_windows(16, 8, 4)[5] == (slice(4, 12), slice(8, 16))
    assert len(fragment_windows(10, 3, 3)) == 9  # starts 0, 3, 6 on each axis
    assert CanvasVecEnv(fragments=False).n_actions == 32 and CanvasVecEnv(strokes=False).n_actions == 18


def test_fragment_copies_exactly_the_proposals_window():
    env = CanvasVecEnv(num_envs=3, seed=1)
    obs, _ = env.reset()
    props = obs[:, 1:3].copy()  # (N, K, S, S)
    # env 0: proposal 1 through window 5 (rows 4..11, cols 8..15); env 1: proposal 0, window 0; env 2: window 8.
    actions = np.array([1 * 9 + 5, 0, 8])
    obs2, *_ = env.step(actions)
    want = np.full((3, 16, 16), -1.0, np.float32)
    want[0, 4:12, 8:16] = props[0, 1, 4:12, 8:16]
    want[1, 0:8, 0:8] = props[1, 0, 0:8, 0:8]
    want[2, 8:16, 8:16] = props[2, 0, 8:16, 8:16]
    assert np.array_equal(obs2[:, 0], want)


def test_paint_then_erase_restores_blank():
    env = CanvasVecEnv(num_envs=2)
    env.reset(seed=0)
    paint, erase = 18 + 6, 18 + 16 + 6  # block (1, 2): rows 4..7, cols 8..11
    obs, *_ = env.step(np.array([paint, paint]))
    want = np.full((16, 16), -1.0, np.float32)
    want[4:8, 8:12] = BRUSH
    assert np.array_equal(obs[0, 0], want) and np.array_equal(obs[1, 0], want)
    obs, *_ = env.step(np.array([paint, erase]))  # painting twice changes nothing more
    assert np.array_equal(obs[0, 0], want)
    assert np.all(obs[1, 0] == -1.0)
    assert np.all(obs[:, -1] == np.float32(2 / 6))


def test_reward_is_realism_change_and_last_step_adds_bonus():
    steps = 3
    env = CanvasVecEnv(num_envs=2, steps=steps, realism=mean_realism, final_bonus=bright_bonus, seed=2)
    obs, _ = env.reset()
    canvas = obs[:, 0:1].copy()
    for t in range(steps):
        actions = np.array([18 + t, 0])  # env 0 paints blocks, env 1 pastes fragment 0 at (0,0)
        new_obs, reward, term, trunc, info = env.step(actions)
        new = info["final_canvas"] if t == steps - 1 else new_obs[:, 0:1]
        want = mean_realism(new) - mean_realism(canvas)
        if t == steps - 1:
            want = want + bright_bonus(new)
            assert trunc.all() and bright_bonus(new)[0] == 4 * 3  # three strokes, four white pixels each
        else:
            assert not trunc.any() and info == {}
        assert not term.any()
        np.testing.assert_allclose(reward, want, rtol=1e-5, atol=1e-6)
        canvas = new.copy()


def test_same_step_autoreset_and_finished_records():
    steps = 4
    env = CanvasVecEnv(num_envs=2, steps=steps, realism=mean_realism, seed=3)
    obs, _ = env.reset()
    painted = np.full((2, 16, 16), -1.0, np.float32)
    seen = [painted.copy()]
    total = np.zeros(2)
    for t in range(steps):
        a = np.array([18 + t, 18 + 15 - t])
        for i, p in enumerate(a - 18):
            r, c = divmod(int(p), 4)
            block = painted[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4]
            block[...] = np.maximum(block, BRUSH)
        seen.append(painted.copy())
        obs, reward, term, trunc, info = env.step(a)
        total += reward
    assert trunc.all()
    assert np.all(obs[:, 0] == -1.0) and np.all(obs[:, -1] == 0.0)  # already the next, blank episode
    assert np.array_equal(info["_final_canvas"], [True, True]) and np.array_equal(info["_final_obs"], [True, True])
    assert np.array_equal(info["final_canvas"][:, 0], painted)
    assert np.array_equal(info["final_obs"][:, 0], painted) and np.all(info["final_obs"][:, -1] == 1.0)
    records = env.pop_finished()
    assert len(records) == 2 and len(env.finished) == 0
    for i, rec in enumerate(records):
        assert rec["canvases"].shape == (steps + 1, 16, 16) and rec["canvases"].dtype == np.float32
        assert np.all(rec["canvases"][0] == -1.0)
        assert np.array_equal(rec["canvases"], np.stack([s[i] for s in seen]))
        assert rec["actions"].dtype == np.int64 and list(rec["actions"]) == [18 + t if i == 0 else 33 - t
                                                                             for t in range(steps)]
        assert rec["return"] == pytest.approx(total[i], abs=1e-5)
        assert rec["return"] == pytest.approx(mean_realism(painted[i:i + 1, None])[0] + 1.0, abs=1e-5)


def test_single_env_passes_gymnasium_checker_and_reseeds():
    env = CanvasEnv()
    check_env(env, skip_render_check=True)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a[1:3], c[1:3])
    assert env.observation_space.contains(a)
    for t in range(6):
        obs, reward, term, trunc, info = env.step(18)
        assert trunc == (t == 5) and not term
    assert obs[-1, 0, 0] == 1.0 and obs[0, 2, 1] == 1.0  # the final obs, not the next blank one
    assert len(env.pop_finished()) == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(fragments=False, strokes=False), "fragments and strokes"),
    (dict(window=20), "window=20"),
    (dict(window=0), "window=0"),
    (dict(stride=0), "stride=0"),
    (dict(steps=0), "steps=0"),
    (dict(n_proposals=0), "n_proposals=0"),
    (dict(num_envs=0), "num_envs=0"),
    (dict(size=2, window=2), "size=2"),
])
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        CanvasVecEnv(**kwargs)


def test_bad_callables_and_actions_are_reported():
    env = CanvasVecEnv(num_envs=2, realism=lambda c: np.zeros(3))
    with pytest.raises(UserError, match="realism returned an array of shape"):
        env.reset()
    env = CanvasVecEnv(num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))
    env.reset()
    with pytest.raises(ValueError, match="0..49"):
        env.step(np.array([0, 50]))


def test_saved_env_state_continues_exactly():
    def make(seed):
        return CanvasVecEnv(num_envs=3, steps=5, realism=mean_realism, final_bonus=bright_bonus, seed=seed)

    for propose in (None, shifted_propose):
        env = make(5)
        env.propose = propose
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(3):
            env.step(rng.integers(0, env.n_actions, 3))
        state = env.state_dict()
        plain = (np.ndarray, int, float, bool, str, type(None))

        def walk(x):
            if isinstance(x, dict):
                return all(isinstance(k, str) and walk(v) for k, v in x.items())
            if isinstance(x, list):
                return all(walk(v) for v in x)
            return isinstance(x, plain) and not (isinstance(x, np.ndarray) and x.dtype == object)

        assert walk(state)
        actions = [rng.integers(0, env.n_actions, 3) for _ in range(4)]
        want = [env.step(a) for a in actions]
        twin = make(99)  # another seed: the state replaces it
        twin.propose = propose
        twin.load_state_dict(state)
        got = [twin.step(a) for a in actions]
        for g, w in zip(got, want):
            assert np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])
            assert np.array_equal(g[3], w[3]) and g[4].keys() == w[4].keys()
            for k in g[4]:
                assert np.array_equal(g[4][k], w[4][k])
        assert any(w[3].any() for w in want)  # the 4 steps crossed an episode's end
        a, b = twin.pop_finished(), env.pop_finished()
        assert len(a) == len(b) == 3
        for x, y in zip(a, b):
            assert np.array_equal(x["canvases"], y["canvases"]) and x["return"] == y["return"]
    with pytest.raises(UserError, match="config the run started with"):
        CanvasVecEnv(num_envs=2).load_state_dict(state)


def test_whole_window_takes_a_proposal_as_it_is():
    def propose(canvases, rng):
        n = len(canvases)
        return np.stack([np.full((n, 1, 16, 16), 0.25, np.float32), np.full((n, 1, 16, 16), 0.75, np.float32)], 1)

    env = CanvasVecEnv(num_envs=2, whole=True, keep=True, propose=propose)
    assert env.n_actions == 2 * 10 + 2 * 16 + 1 and action_names(env)[-1] == "keep the canvas"
    assert action_names(env)[0] == "whole proposal 0" and action_names(env)[10] == "whole proposal 1"
    env.reset(seed=0)
    obs, *_ = env.step(np.array([10, 0]))  # env 0 takes proposal 1 whole, env 1 proposal 0 whole
    assert np.all(obs[0, 0] == 0.75) and np.all(obs[1, 0] == 0.25)
    obs, *_ = env.step(np.array([env.n_actions - 1, env.n_actions - 1]))  # keep: nothing changes
    assert np.all(obs[0, 0] == 0.75) and np.all(obs[1, 0] == 0.25)
