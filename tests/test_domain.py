"""The CLM loop runs on the domain interface alone: a tiny fake domain (a
bandit for the agent, 4x4 noise images for the GAN) goes through every step,
and its state goes through the checkpoint and back. Registered in the domain
registry, the same fake domain runs through the CLI: ``clm run``, ``clm
generate`` and ``clm report`` need nothing but its registration."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from clm.agents.dqn import DQNConfig
from clm.gan.models import ImageDiscriminator, ImageGenerator
from clm.gan.train import GanConfig
from clm.cli.main import main
from clm.engine import registry
from clm.engine.loop import run_clm


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
    eval_every: int = 1
    wandb: str = ""
    report: bool = True
    gan: GanConfig = field(default_factory=lambda: GanConfig(batch_size=8, z_dim=4, g_width=4, d_width=4,
                                                             divergence_patience=10_000))


class FakeDomain:
    name = "fake"
    evaluation_keys = ("fake_score",)
    success_flag = True

    def __init__(self, cfg=None, device=None, run_dir=None):
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

    def search(self, gan, rnd, timer):
        self.calls.append("search")
        return {}

    def feed_agent(self, agent, timer):
        self.calls.append("feed_agent")
        return {}

    def evaluate(self, agent):
        self.calls.append("evaluate")
        return {"fake_score": float((agent.greedy_actions(np.ones((4, 2), np.float32)) == 1).mean())}

    def stuck(self, rnd, train_success_rate, headline):
        return None

    def loaded(self, gan):
        self.gan = gan

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
        if run_dir is not None:
            (run_dir / "fake.txt").write_text(f"{self.archived}\n")
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


# -- the registry: a new domain is one registration ---------------------------------------------------------------
def _fake_generate(args):
    """clm generate for the fake domain: the run's greedy bandit arm, n times (what its agent decides)."""
    from clm.engine.runs import load_domain_run

    domain, agent = load_domain_run(args.run_dir, FakeConfig)
    arms = agent.greedy_actions(np.ones((args.n, 2), np.float32))
    Path(args.out).write_text("".join(f"{int(a)}\n" for a in arms))
    return 0


def _fake_section(report):
    return f"<p>fake archived {(report.run_dir / 'fake.txt').read_text().strip()}</p>"


@pytest.fixture
def fake_registered():
    spec = registry.register(registry.DomainSpec(
        name="fake", config_cls=FakeConfig, domain_cls=FakeDomain, headline="fake_score",
        figures=("fake_score", "fake_archived"), resumable=("rounds",), agent_name="gambler",
        generate=_fake_generate, headline_figures=(("fake_score", "Fake score", "fraction"),),
        report_sections=(registry.ReportSection("fake", "The fake part", _fake_section),)))
    yield spec
    registry.unregister("fake")


def test_a_registered_domain_runs_generates_and_reports_through_the_cli(fake_registered, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--domain", "fake", "--out", str(out), "--json", "rounds=3", "player_steps=128"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["domain"] == "fake" and summary["fake_score"] == 1.0 and summary["fake_archived"] == 3
    # generate: the fake domain's own command, reached through the run's checkpoint
    assert main(["generate", str(out), "-n", "5", "--out", str(tmp_path / "arms.txt")]) == 0
    assert (tmp_path / "arms.txt").read_text().split() == ["1"] * 5  # the learned arm
    # report: the common sections plus the domain's, in the registry's terms
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "The fake part" in page and "fake archived 3" in page and "Fake score" in page
    assert "attributions of the gambler and D" in page
    assert "Levels" not in re.findall(r"<h2>(.*?)</h2>", page)  # no other domain's section
    # resume: a key the registration does not allow is refused before anything runs
    assert main(["run", "--resume", str(out), "gan_steps=3"]) == 2


def test_registering_a_domain_twice_is_an_error_naming_it(fake_registered):
    with pytest.raises(registry.RegistryError, match="'fake' is registered twice"):
        registry.register(fake_registered)


def test_a_domain_lacking_a_protocol_method_is_refused_naming_it():
    NoFinish = type("NoFinish", (), {k: v for k, v in vars(FakeDomain).items() if k != "finish"})

    with pytest.raises(registry.RegistryError, match=r"'half': NoFinish lacks finish of the CLMDomain protocol"):
        registry.register(registry.DomainSpec(name="half", config_cls=FakeConfig, domain_cls=NoFinish,
                                              headline="x", figures=("x",), resumable=()))
    assert "half" not in registry.names()


def test_an_unknown_domain_is_a_users_mistake(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--domain", "nosuch"])
    assert e.value.code == 2 and "nosuch" in capsys.readouterr().err
