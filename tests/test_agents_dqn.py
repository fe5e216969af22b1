import gymnasium as gym
import numpy as np
import pytest
import torch

from clm.agents.dqn import DQN, DQNConfig


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
    got = agent.td_targets(b, agent.q_target(b.next_obs).detach())
    q_online, q_target = agent.q(b.next_obs).detach().numpy(), agent.q_target(b.next_obs).detach().numpy()
    direct = np.array([b.returns[i].item() + b.discounts[i].item() * q_target[i, q_online[i].argmax()]
                       for i in range(32)])
    assert np.allclose(got.numpy(), direct, atol=1e-5)
    agent.cfg.double_dqn = False
    vanilla = agent.td_targets(b, torch.as_tensor(q_target)).numpy()
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
    for p, q in zip(a.q.parameters(), b.q.parameters()):
        assert torch.equal(p, q)


def test_same_seed_same_numbers():
    cfg = DQNConfig(total_steps=800, learning_starts=200, train_freq=50, gradient_steps=5,
                    hidden=(16,), eval_interval=0)
    assert _losses_after(DQN(cfg), 800) == _losses_after(DQN(cfg), 800)


@pytest.mark.slow
def test_cartpole_learns():
    """Greedy return >= 200 within a short budget (default config)."""
    cfg = DQNConfig(total_steps=40_000, eval_interval=2_500, eval_episodes=10,
                    target_return=200, stop_at_target=True)
    summary = DQN(cfg).learn()
    assert summary["best_eval_return"] >= 200, summary


def test_minatar_runs_with_a_conv_network():
    pytest.importorskip("minatar")
    cfg = DQNConfig(env_id="MinAtar/Breakout-v1", num_envs=2, total_steps=600, learning_starts=200,
                    train_freq=100, gradient_steps=4, batch_size=16, conv_channels=(8,), hidden=(32,),
                    eval_interval=0, eval_episodes=2)
    agent = DQN(cfg)
    assert agent.q.channels_last and isinstance(agent.q.features[0], torch.nn.Conv2d)
    summary = agent.learn()
    assert summary["env_steps"] == 600 and agent.gradient_steps > 0
