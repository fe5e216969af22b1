import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from clm.agents.dqn import DQN, DQNConfig
from clm.agents.training import learn, train_round


class CountEnv(gym.Env):
    """obs = [steps so far]; reward 1 per step; ends after `length` steps,
    terminated if `terminate` else truncated (a time limit)."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length=3, terminate=False):
        self.length, self.terminate = length, terminate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return (np.array([float(self.t)], np.float32), 1.0, end and self.terminate,
                end and not self.terminate, {})


def count_vec(mode, terminate):
    return gym.vector.SyncVectorEnv([lambda: CountEnv(3, terminate)] * 2, autoreset_mode=mode)


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.NEXT_STEP])
@pytest.mark.parametrize("terminate", [False, True])
@pytest.mark.slow
def test_episode_end_bootstraps_from_the_real_final_observation(mode, terminate):
    cfg = DQNConfig(num_envs=2, learning_starts=10**6, gamma=0.5, hidden=(8,), eval_interval=0)
    agent = DQN(cfg, envs=count_vec(mode, terminate))
    for _ in range(8):
        agent.collect_step()
    buf = agent.replay
    stored = buf.valid[:8].all(axis=1)
    obs, nxt = buf.obs[:8, 0, 0][stored], buf.next_obs[:8, 0, 0][stored]
    ends = buf.episode_end[:8, 0][stored]
    # every valid transition goes from t to t+1; the last one's next obs is the final obs 3
    assert np.array_equal(nxt, obs + 1)
    assert np.array_equal(obs[ends], np.full(ends.sum(), 2.0)) and ends.sum() >= 2
    idx = np.flatnonzero(buf.valid[:8].reshape(-1) & buf.episode_end[:8].reshape(-1))
    _, disc, _ = buf.n_step_targets(idx)
    expected = 0.0 if terminate else 0.5  # truncation still bootstraps
    assert np.allclose(disc, expected)
    if mode == gym.vector.AutoresetMode.NEXT_STEP:
        assert (~buf.valid[:8]).sum() >= 2  # the reset filler steps are not learned from
    assert agent.episodes >= 4 and all(r == 3.0 for r in agent.recent_returns)


def test_double_dqn_target_matches_direct_computation():
    cfg = DQNConfig(double_dqn=True, hidden=(16,), learning_starts=10**6, gamma=0.9, n_step=1)
    agent = DQN(cfg)
    for _ in range(50):
        agent.collect_step()
    with torch.no_grad():  # target net = minus online net: the two argmaxes disagree
        agent.q_target.head.weight.neg_()
        agent.q_target.head.bias.neg_()
    b = agent.replay.sample(32, np.random.default_rng(0))
    got = agent.learner.td_targets(b, agent.q_target(b.next_obs).detach())
    q_online, q_target = agent.q(b.next_obs).detach().numpy(), agent.q_target(b.next_obs).detach().numpy()
    direct = np.array([b.returns[i].item() + b.discounts[i].item() * q_target[i, q_online[i].argmax()]
                       for i in range(32)])
    assert np.allclose(got.numpy(), direct, atol=1e-5)
    agent.cfg.double_dqn = False
    vanilla = agent.learner.td_targets(b, torch.as_tensor(q_target)).numpy()
    assert np.allclose(vanilla, b.returns.numpy() + b.discounts.numpy() * q_target.max(1), atol=1e-5)
    assert not np.allclose(vanilla, got.numpy())


def _losses_after(agent, steps):
    losses = []
    while agent.env_steps < steps:
        agent.collect_step()
        loss = agent.pop_mean_loss()
        if loss is not None:
            losses.append(loss)
    return losses


@pytest.mark.parametrize("extra", [{}, {"prioritized": True, "n_step": 3, "double_dqn": True, "dueling": True}])
@pytest.mark.slow
def test_resume_from_checkpoint_gives_the_same_next_losses(tmp_path, extra):
    cfg = DQNConfig(total_steps=1200, learning_starts=200, train_freq=50, gradient_steps=5,
                    batch_size=16, hidden=(32, 32), eval_interval=0, **extra)
    a = DQN(cfg)
    _losses_after(a, 600)
    a.save(tmp_path / "ck")
    continued = _losses_after(a, 1200)
    b = DQN(cfg)
    b.load(tmp_path / "ck")
    resumed = _losses_after(b, 1200)
    assert len(continued) > 5 and continued == resumed
    assert b.exact_resume is True  # CartPole's whole state was saved and read back
    for p, q in zip(a.q.parameters(), b.q.parameters()):
        assert torch.equal(p, q)


def test_same_seed_same_numbers():
    cfg = DQNConfig(total_steps=800, learning_starts=200, train_freq=50, gradient_steps=5,
                    hidden=(16,), eval_interval=0)
    assert _losses_after(DQN(cfg), 800) == _losses_after(DQN(cfg), 800)


class _Rows:
    """A logger that keeps the rows ``learn`` logs."""

    def __init__(self):
        self.rows = []

    def log(self, step, metrics):
        self.rows.append((step, set(metrics)))

    def progress(self, step, **postfix):
        pass


def test_learn_evaluates_logs_and_checkpoints_at_the_first_step_past_each_interval(tmp_path):
    """With 3 envs the counter moves in steps of 3: each event falls on the first multiple of 3 at or past
    a multiple of its interval (computed here directly), and the final evaluation closes the run."""
    cfg = DQNConfig(num_envs=3, total_steps=600, learning_starts=90, train_freq=30, gradient_steps=2,
                    buffer_size=3_000, hidden=(8,), log_interval=100, eval_interval=250, eval_episodes=2, checkpoint_interval=280)
    agent, rows = DQN(cfg), _Rows()
    summary = learn(agent, logger=rows, checkpoint_dir=tmp_path)
    first_past = lambda k: -(-k // 3) * 3  # noqa: E731
    evals = [s for s, keys in rows.rows if "eval_return_mean" in keys]
    logs = [s for s, keys in rows.rows if "epsilon" in keys]
    assert logs == [first_past(k) for k in range(100, 601, 100)]
    assert evals == [first_past(250), first_past(500), 600]  # the last: the final evaluation
    assert summary["env_steps"] == 600 == agent.env_steps and summary["episodes"] == agent.episodes
    assert (tmp_path / "latest" / "meta.json").is_file() and (tmp_path / "best" / "meta.json").is_file()


def test_train_round_counts_the_rounds_episodes():
    """train_round: at least one vector step, the round's own episodes and successes, the loss popped."""
    cfg = DQNConfig(num_envs=2, learning_starts=50, train_freq=20, gradient_steps=2, hidden=(8,), eval_interval=0)
    agent, twin = DQN(cfg), DQN(cfg)
    first = train_round(agent, 1)  # fewer env steps than envs: one vector step still
    assert agent.env_steps == 2 and first.loss is None and first.episodes == 0
    figures = train_round(agent, 299)
    while twin.env_steps < 300:  # the same seed, stepped by hand
        twin.collect_step()
    assert agent.env_steps == 300 and figures.episodes == twin.episodes > 0
    assert figures.successes == 0  # CartPole sets no success flag
    assert figures.mean_return == pytest.approx(float(np.mean(twin.recent_returns)))
    assert figures.loss == pytest.approx(twin.pop_mean_loss()) and agent.pop_mean_loss() is None


@pytest.mark.slow
def test_cartpole_learns():
    """Greedy return >= 200 within a short budget (default config)."""
    cfg = DQNConfig(total_steps=40_000, eval_interval=2_500, eval_episodes=10,
                    target_return=200, stop_at_target=True)
    summary = learn(DQN(cfg))
    assert summary["best_eval_return"] >= 200, summary


def test_minatar_runs_with_a_conv_network():
    pytest.importorskip("minatar")
    cfg = DQNConfig(env_id="MinAtar/Breakout-v1", num_envs=2, total_steps=600, learning_starts=200,
                    train_freq=100, gradient_steps=4, batch_size=16, conv_channels=(8,), hidden=(32,),
                    eval_interval=0, eval_episodes=2)
    agent = DQN(cfg)
    assert agent.q.channels_last and isinstance(agent.q.features[0], torch.nn.Conv2d)
    summary = learn(agent)
    assert summary["env_steps"] == 600 and agent.gradient_steps > 0


@pytest.mark.parametrize("hidden", [(64, 64), (16,), (8, 8, 8)])
@pytest.mark.parametrize("huber", [True, False])
def test_numpy_mlp_td_gradients_match_autograd(hidden, huber):
    from clm.agents.networks import NumpyMLP, QNetwork, plain_mlp_layers

    torch.manual_seed(0)
    net = QNetwork((4,), 3, hidden=hidden)
    fast = NumpyMLP(plain_mlp_layers(net))
    x, a = torch.randn(32, 4), torch.randint(0, 3, (32,))
    target, w = 3 * torch.randn(32), torch.rand(32)
    q = net(x).gather(1, a[:, None]).squeeze(1)
    per_item = torch.nn.functional.smooth_l1_loss(q, target, reduction="none") if huber else (q - target) ** 2
    expected = torch.autograd.grad((w * per_item).mean(), list(net.parameters()))
    out = [np.zeros(p.shape, np.float32) for p in net.parameters()]
    td = fast.td_gradients(x.numpy(), a.numpy(), target.numpy(), w.numpy(), out, huber=huber)
    for e, g in zip(expected, out):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(td, (q - target).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.q_values(x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_plain_mlp_fast_path_only_for_plain_mlps():
    from clm.agents.networks import QNetwork, plain_mlp_layers

    assert plain_mlp_layers(QNetwork((4,), 2, hidden=(8,))) is not None
    assert plain_mlp_layers(QNetwork((4,), 2, hidden=(8,), dueling=True)) is None
    assert plain_mlp_layers(QNetwork((2, 5, 5), 2, kind="conv", hidden=(8,))) is None


@pytest.mark.parametrize("max_grad_norm", [10.0, 1e-3])  # clipping off in effect, and on
def test_fast_update_equals_torch_adam_with_clipping(max_grad_norm):
    """One update of the flat-buffer NumPy path equals loss.backward(),
    clip_grad_norm_ and torch.optim.Adam.step() on a copy of the network."""
    import copy

    cfg = DQNConfig(total_steps=2000, learning_starts=300, train_freq=10**6, hidden=(32, 32), batch_size=16,
                    eval_interval=0, max_grad_norm=max_grad_norm)
    agent = DQN(cfg)
    assert agent.learner.fast is not None
    while agent.env_steps < 400:
        agent.collect_step()
    ref = copy.deepcopy(agent.q)
    ref_target = copy.deepcopy(agent.q_target)
    opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    for _ in range(3):
        b = agent.replay.sample(cfg.batch_size, agent.rng)
        target = b.returns + b.discounts * ref_target(b.next_obs).max(1).values.detach()
        q = ref(b.obs).gather(1, b.actions[:, None]).squeeze(1)
        opt.zero_grad()
        torch.nn.functional.smooth_l1_loss(q, target).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), max_grad_norm)
        opt.step()
        learner = agent.learner
        grads, _ = learner.td_gradients(b.obs, b.actions, learner.td_targets(b, learner.target_q_values(b.next_obs)),
                                        b.weights)
        learner.apply(grads)
    for p, r in zip(agent.q.parameters(), ref.parameters()):
        torch.testing.assert_close(p, r, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_amp_runs_the_q_network_in_bfloat16_on_the_cpu():
    """amp=true: the torch path (not the NumPy one) with bfloat16 forward passes on the CPU; the
    Q-values agree with float32's to bf16's precision, and the losses stay finite while it learns."""
    cfg = DQNConfig(total_steps=1500, learning_starts=200, eval_interval=0, eval_episodes=2, seed=3)
    fp32, bf16 = DQN(cfg), DQN(dataclasses.replace(cfg, amp=True))
    assert fp32.learner.fast is not None and bf16.learner.fast is None
    obs = torch.randn(256, 4)
    q32, q16 = fp32.learner.online_q_values(obs), bf16.learner.online_q_values(obs)  # same seed, same weights
    assert q16.dtype == torch.float32 and not torch.equal(q16, q32)
    assert torch.allclose(q16, q32, rtol=0.02, atol=0.02)
    summary = learn(bf16)
    assert math.isfinite(summary["eval_return_mean"]) and bf16.gradient_steps > 0
    assert all(torch.isfinite(p).all() for p in bf16.q.parameters())
