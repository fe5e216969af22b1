"""The design domain's edit env and the design CLM end to end: env checker, volume kept, rewards as the
direct computation, exact resume, learning, clm generate, bad input."""

import json

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from clm.cli.main import main
from clm.core.config import load_config, read_yaml
from clm.design_clm.config import DesignConfig
from clm.design_clm.domain import DesignCLM
from clm.domains.design.corpus import build_corpus, write_corpus
from clm.domains.design.env import DesignEnv, DesignVecEnv
from clm.domains.design.fe import FESolver
from clm.domains.design.topology import describe

TINY = ["grid=16x8", "corpus_train=6", "corpus_heldout=3", "simp_max_iter=30", "rounds=2", "gan_warmup_steps=4",
        "gan_steps=2", "player_steps=32", "player.num_envs=4", "player.learning_starts=16", "samples_per_round=4",
        "eval_cases=3", "eval_every=1", "episode_steps=3", "report=false"]


@pytest.fixture(scope="module")
def corpus():
    c = build_corpus(4, 2, 16, 8, 0.4, seed=1, max_iter=30)
    keys = [describe(d, lc).key for d, lc in zip(c.design, c.load_cases)]
    return c, keys


def test_the_edit_env_passes_gymnasiums_checker(corpus):
    c, keys = corpus
    check_env(DesignEnv(c.load_cases, c.compliance, keys, steps=3), skip_render_check=True)


def test_edits_keep_the_volume_and_rewards_are_the_score_change(corpus):
    c, keys = corpus
    env = DesignVecEnv(2, c.load_cases, c.compliance, keys, steps=4, seed=2)
    obs, _ = env.reset(options={"cases": np.array([0, 1])})
    s = FESolver(16, 8)
    volume = int(round(0.4 * 128))
    for actions in ([3, 40], [env.n_actions - 1, 50], [17, 5]):
        before, solves = obs[:, 0].copy(), env._solves.copy()
        obs, reward, _, truncated, info = env.step(np.array(actions))
        for i in range(2):
            after = obs[i, 0] if not truncated[i] else info["final_obs"][i, 0]
            assert after.sum() == volume
            lc, ref = c.load_cases[i], c.compliance[i]

            def score(d):
                return float(np.clip(-np.log10(s.compliance(d, lc) / ref), -10, 0.5)) - (not describe(d, lc).connected)
            want = 0.0 if np.array_equal(after, before[i]) else score(after) - score(before[i])
            assert reward[i] == pytest.approx(want, abs=1e-5)
            if actions[i] == env.n_actions - 1:  # keep: no change, no solve
                assert np.array_equal(after, before[i]) and env._solves[i] == solves[i]


def test_edit_env_state_reads_back_exactly(corpus):
    c, keys = corpus
    a = DesignVecEnv(3, c.load_cases, c.compliance, keys, steps=3, seed=4)
    a.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):
        a.step(rng.integers(a.n_actions, size=3))
    b = DesignVecEnv(3, c.load_cases, c.compliance, keys, steps=3, seed=99)
    b.load_state_dict(a.state_dict())
    acts = rng.integers(a.n_actions, size=(5, 3))
    for act in acts:
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb)


@pytest.mark.slow
def test_design_run_resumed_gives_the_same_figures_as_one_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLM_CACHE", str(tmp_path / "cache"))
    assert main(["run", "--domain", "design", "--out", str(tmp_path / "whole"), "--json", *TINY]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert whole["status"] == "ok" and np.isfinite(whole["design_median_ratio"])
    main(["run", "--domain", "design", "--out", str(tmp_path / "parts"), "--json", "max_seconds=0.001", *TINY])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rounds"] == 1
    assert main(["run", "--resume", str(tmp_path / "parts"), "--json", "max_seconds=0"]) == 0
    parts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert parts["exact_resume"] is True and parts["domain"] == "design"
    for k in ("creative_designs", "g_evaluations", "design_median_ratio", "g_median_ratio", "design_solves_mean"):
        assert parts[k] == whole[k], k
    # clm generate for a user's load case: a PNG and one metrics line per design
    out = tmp_path / "gen.png"
    assert main(["generate", str(tmp_path / "whole"), "-n", "3", "--out", str(out), "--load", "16,4,0,-1"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "gen.png.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and out.stat().st_size > 0 and all(np.isfinite(r["ratio"]) for r in lines)
    capsys.readouterr()
    # bad input: the load outside the grid, a corpus of another grid -> exit 2, naming what and where
    assert main(["generate", str(tmp_path / "whole"), "-n", "1", "--out", str(out), "--load", "17,4,0,-1"]) == 2
    assert "--load 1 '17,4,0,-1': the load point (17, 4) is not a node of the 16x8 grid" in capsys.readouterr().err
    other = tmp_path / "other.safetensors"
    write_corpus(other, build_corpus(1, 1, 32, 16, 0.4, max_iter=2))
    assert main(["run", "--domain", "design", "--out", str(tmp_path / "bad"), f"--data={other}", *TINY]) == 2
    err = capsys.readouterr().err
    assert "other.safetensors: header nelx x nely is 32x16, but this run's grid is 16x8" in err
    assert not (tmp_path / "bad").exists()
    assert main(["run", "--domain", "design", "--out", str(tmp_path / "bad"), "volfrac=1.5", *TINY]) == 2
    assert "volfrac 1.5 must lie in (0, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_design_clm_learns(tmp_path, monkeypatch, capsys):
    """A short run: G's supervised L1 to SIMP's designs of its load cases falls, and on the held-out
    load cases the editor's designs are no worse than G's proposals they started from (median ratio)."""
    monkeypatch.setenv("CLM_CACHE", str(tmp_path / "cache"))
    settings = [s for s in TINY if not s.startswith(("rounds=", "gan_warmup_steps=", "gan_steps=", "eval_every="))]
    assert main(["run", "--domain", "design", "--out", str(tmp_path / "r"), "--json", "rounds=6", "eval_every=6",
                 "gan_warmup_steps=150", "gan_steps=10", *settings]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    l1 = [r["g_agent_loss"] for r in rows if "g_agent_loss" in r]
    # the first logged G term is after 150 warm-up steps; the untrained G's is measured here directly
    cfg = load_config(DesignConfig, base=read_yaml(tmp_path / "r" / "config.yaml"))
    domain = DesignCLM(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    G, _ = domain.build_gan(None, torch.device("cpu"))
    x = domain.real_data()
    with torch.no_grad():
        fresh = G(torch.randn(len(x), cfg.gan.z_dim), x[:, 1:].reshape(len(x), -1))[:, 0]
    untrained = float((fresh - x[:, 0]).abs().mean()) * cfg.supervised_weight
    assert l1[-1] < 0.8 * untrained
    assert summary["design_median_ratio"] <= summary["g_median_ratio"] * 1.0001
