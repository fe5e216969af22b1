import numpy as np
import pytest

from clm.agents.replay import PrioritizedReplay, SumTree, UniformReplay


def fill(buf, T, num_envs, rng, end_prob=0.2):
    """Random transitions; obs = a unique id per (t, env) so slots can be traced."""
    log = []
    for t in range(T):
        obs = (np.arange(num_envs) + 100 * t)[:, None].astype(np.float32)
        rew = rng.normal(size=num_envs).astype(np.float32)
        term = rng.random(num_envs) < end_prob / 2
        trunc = ~term & (rng.random(num_envs) < end_prob / 2)
        buf.add(obs, np.zeros(num_envs, np.int64), rew, obs + 0.5, term, trunc)
        log.append((rew, term, trunc))
    return log


def direct_n_step(log, t, e, n, gamma, newest):
    """The n-step return by a plain loop over one env's steps."""
    ret, k = 0.0, 0
    while True:
        rew, term, trunc = log[t + k]
        ret += gamma**k * rew[e]
        if term[e]:
            return ret, 0.0, t + k
        if trunc[e] or k == n - 1 or t + k == newest:
            return ret, gamma ** (k + 1), t + k
        k += 1


@pytest.mark.parametrize("n", [1, 3, 5])
def test_n_step_targets_match_direct_loop(n):
    rng = np.random.default_rng(0)
    E, T, gamma = 3, 40, 0.9
    buf = UniformReplay(1000, E, (1,), n_step=n, gamma=gamma)
    log = fill(buf, T, E, rng)
    idx = np.arange(T * E)
    returns, disc, end_rows = buf.n_step_targets(idx)
    for i in idx:
        t, e = divmod(i, E)
        r, d, end = direct_n_step(log, t, e, n, gamma, T - 1)
        assert returns[i] == pytest.approx(r, rel=1e-5, abs=1e-5)
        assert disc[i] == pytest.approx(d, rel=1e-6)
        assert end_rows[i] == end
    b = buf.gather(idx)  # the bootstrap observation comes from the window's last step
    assert np.allclose(b.next_obs.numpy()[:, 0], 100 * end_rows + np.arange(T * E) % E + 0.5)


def test_n_step_window_wraps_in_a_full_buffer():
    rng = np.random.default_rng(1)
    E, n, gamma = 2, 4, 0.95
    buf = UniformReplay(20, E, (1,), n_step=n, gamma=gamma)  # 10 rows, 25 steps written
    log = fill(buf, 25, E, rng)
    assert buf.full and buf.pos == 5
    returns, disc, _ = buf.n_step_targets(np.arange(20))
    for i in range(20):
        row, e = divmod(i, E)
        t = row + 20 if row < 5 else row + 10  # the step stored in that row
        r, d, _ = direct_n_step(log, t, e, n, gamma, 24)
        assert returns[i] == pytest.approx(r, rel=1e-5, abs=1e-5) and disc[i] == pytest.approx(d)


def test_uniform_sampling_skips_invalid_filler_steps():
    buf = UniformReplay(100, 2, (1,))
    for t in range(10):
        buf.add(np.zeros((2, 1)), np.zeros(2, np.int64), np.zeros(2), np.zeros((2, 1)),
                np.zeros(2, bool), np.zeros(2, bool), valid=np.array([t % 2 == 0, True]))
    idx = buf.sample_indices(5000, np.random.default_rng(0))
    assert buf.valid.reshape(-1)[idx].all()


def test_sum_tree_total_and_search():
    tree = SumTree(10)
    p = np.arange(1, 11, dtype=float)
    tree.set(np.arange(10), p)
    assert tree.total == pytest.approx(p.sum())
    cums = np.cumsum(p)
    u = np.array([0.0, 0.99, 1.0, 2.5, 54.9])
    assert list(tree.find(u)) == list(np.searchsorted(cums, u, side="right"))
    tree.set(np.array([3, 3]), np.array([0.0, 0.0]))
    assert tree.total == pytest.approx(p.sum() - 4)


def test_prioritized_probabilities_weights_and_frequencies():
    rng = np.random.default_rng(0)
    E, T, alpha, beta = 2, 50, 0.7, 0.5
    buf = PrioritizedReplay(1000, E, (1,), alpha=alpha, eps=0.0)
    fill(buf, T, E, rng)
    idx = np.arange(T * E)
    td = rng.uniform(0.1, 3.0, size=T * E)
    buf.update_priorities(idx, td)
    direct_p = td**alpha / (td**alpha).sum()
    assert np.allclose(buf.probabilities(idx), direct_p)
    w = buf.importance_weights(idx, beta)
    direct_w = (len(idx) * direct_p) ** (-beta)
    assert np.allclose(w, direct_w / direct_w.max(), rtol=1e-5)
    draws = np.concatenate([buf.sample_indices(100, rng) for _ in range(2000)])
    freq = np.bincount(draws, minlength=T * E) / len(draws)
    assert np.abs(freq - direct_p).max() < 0.004
    # new transitions get the largest priority so far
    buf.add(np.zeros((E, 1)), np.zeros(E, np.int64), np.zeros(E), np.zeros((E, 1)),
            np.zeros(E, bool), np.zeros(E, bool))
    assert buf.tree.get(np.array([T * E]))[0] == pytest.approx(td.max() ** alpha)
