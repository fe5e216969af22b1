"""The CLM loop runs on the domain interface alone: a tiny fake domain (a
bandit for the agent, 4x4 noise images for the GAN) goes through every step,
and its state goes through the checkpoint and back."""

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from clm.agents.dqn import DQNConfig
from clm.gan.models import ImageDiscriminator, ImageGenerator
from clm.gan.train import GanConfig
from clm.hybrid.loop import run_clm


class Bandit(gym.vector.VectorEnv):
    """One-step episodes; action 1 pays 1, action 0 pays 0."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs=4):
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed=None, options=None):
        return np.ones((self.num_envs, 2), np.float32), {}

    def step(self, actions):
        obs = np.ones((self.num_envs, 2), np.float32)
        done = np.ones(self.num_envs, bool)
        return (obs, np.asarray(actions, np.float32), done, np.zeros(self.num_envs, bool),
                {"final_obs": obs.copy(), "_final_obs": done.copy(), "is_success": np.asarray(actions) == 1})

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@dataclass
class FakeConfig:
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    rounds: int = 3
    max_seconds: float = 0.0
    gan_steps: int = 2
    gan_warmup_steps: int = 0
    player_steps: int = 64
    designer_steps: int = 0
    schedule: str = "fixed"
    eval_every: int = 1
    stuck_rounds: int = 0
    wandb: str = ""
    gan: GanConfig = field(default_factory=lambda: GanConfig(batch_size=8, z_dim=4, g_width=4, d_width=4,
                                                             divergence_patience=10_000))


class FakeDomain:
    name = "fake"
    evaluation_keys = ("fake_score",)

    def __init__(self):
        self.calls: list[str] = []
        self.archived = 0
        self.restored = None

    def real_data(self):
        self.calls.append("real_data")
        return torch.rand(32, 1, 4, 4) * 2 - 1

    def build_gan(self, shape, device):
        self.calls.append("build_gan")
        return ImageGenerator(shape, 4, 4, 0, "mlp"), ImageDiscriminator(shape, 4, 0, "mlp", False, False)

    def agent_env(self, gan):
        self.calls.append("agent_env")
        return Bandit()

    def agent_config(self):
        return DQNConfig(env_id="bandit", num_envs=4, hidden=(8,), learning_starts=16, train_freq=4,
                         gradient_steps=1, total_steps=192, eval_interval=0, target_update_interval=16)

    def attach(self, gan, agent, device):
        self.calls.append("attach")

    def start(self, agent, timer):
        self.calls.append("start")
        return {}

    def generate(self, gan, agent, rng, rnd):
        self.calls.append("generate")
        self.archived += 1
        return {"fake_generated": float(rnd)}

    def gan_round(self, agent, real_x):
        self.calls.append("gan_round")
        return (lambda fake: 0.0 * fake.sum()), {}

    def d_real_batch(self, real_x, n):
        return real_x[torch.randint(len(real_x), (n,))]

    def other_fakes(self, n):
        return None

    def g_condition(self, n, device):
        return None

    def search(self, gan, plan, rnd, timer):
        self.calls.append("search")
        return {}

    def feed_agent(self, agent, timer):
        self.calls.append("feed_agent")
        return {}

    def evaluate(self, agent):
        self.calls.append("evaluate")
        return {"fake_score": float((agent.greedy_actions(np.ones((4, 2), np.float32)) == 1).mean())}

    def round_figures(self):
        return {"archive_size": self.archived}

    def progress(self):
        return {}

    def checkpoint(self):
        return {"fake.w": torch.arange(3.0)}, {"archived": self.archived, "exact": True}

    def restore(self, weights, state, where):
        self.restored = (weights["fake.w"].tolist(), state["archived"])
        self.archived = state["archived"]
        return True

    def finish(self, run_dir, gan, status):
        self.calls.append("finish")
        return {"fake_archived": self.archived}


def test_the_loop_runs_a_fake_domain_step_by_step_and_resumes_it(tmp_path):
    dom = FakeDomain()
    s = run_clm(FakeConfig(rounds=2), tmp_path, quiet=True, domain=dom)
    assert s["status"] == "ok" and s["domain"] == "fake" and s["rounds"] == 2
    assert s["fake_archived"] == 2 and s["fake_score"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    one_round = ["generate", "gan_round", "search", "feed_agent", "evaluate"]
    assert dom.calls == ["real_data", "build_gan", "agent_env", "attach", "start", *one_round, *one_round, "finish"]
    # the domain's weights and state go through the run's checkpoint and back on resume
    again = FakeDomain()
    s = run_clm(FakeConfig(rounds=3), tmp_path, resume=True, quiet=True, domain=again)
    assert again.restored == ([0.0, 1.0, 2.0], 2)
    assert "start" not in again.calls and s["rounds"] == 3 and s["fake_archived"] == 3


def test_a_bandit_agent_learns_through_the_loop(tmp_path):
    # the loop's agent part is real learning: the greedy bandit policy ends on the paying arm
    s = run_clm(FakeConfig(rounds=3, player_steps=128), tmp_path, quiet=True, domain=FakeDomain())
    assert s["fake_score"] == 1.0
