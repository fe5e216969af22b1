"""The CLM's couplings against direct computations, and short end-to-end runs."""

import json

import numpy as np
import pytest
import torch

from clm.cli.main import main
from clm.domains.levels import Level, levels_to_onehot, levels_to_tiles
from clm.domains.levels.generator import generate_levels
from clm.gan.models import ImageDiscriminator
from clm.levels_clm.corpus import player_pool
from clm.engine.archive import ScoredArchive
from clm.levels_clm.couplings import (LevelJudge, archive_creative,
                                  player_solve_rate)

TINY = ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4",
        "designer_steps=16", "samples_per_round=16", "eval_every=1", "eval_levels=10",
        "player.learning_starts=64", "player.conv_channels=[8]", "player.hidden=[32]",
        "designer.learning_starts=8", "gan.g_width=8", "gan.d_width=8", "player.pretrain_steps=200"]


@pytest.fixture(scope="module")
def levels():
    return generate_levels(40, size=7, n_boxes=2, seed=3, min_pushes=3)


def test_judge_matches_direct_criteria(levels):
    torch.manual_seed(0)
    D = ImageDiscriminator((7, 7, 7), 8, 0, "dcgan", False, True)
    corpus, candidates = levels[:30], levels[25:]  # five candidates are copies of corpus levels
    judge = LevelJudge(levels_to_tiles(corpus), min_novelty=3, target_pushes=8.0, solve_time_limit=2.0)
    judge.refresh_bar(D, corpus)
    j = judge.judge(D, candidates)
    tiles, ref = levels_to_tiles(candidates), levels_to_tiles(corpus)
    direct_nov = np.array([min(int((t != r).sum()) for r in ref) for t in tiles])
    assert np.array_equal(j.novelty, direct_nov)
    assert (j.novelty[:5] == 0).all() and not j.creative[:5].any()
    assert j.playable.all() and (j.pushes >= 3).all()  # generated levels are solvable and not trivial
    with torch.no_grad():
        real = torch.sigmoid(D(torch.from_numpy(levels_to_onehot(candidates)).float())[0]).numpy()
    assert np.allclose(j.realism, real, atol=1e-6)
    expected = real + 1.0 + np.minimum(direct_nov / 3, 1) + np.clip(j.pushes / 8.0, 0, 1)
    assert np.allclose(j.score, expected, atol=1e-6)
    assert np.array_equal(j.creative, (direct_nov >= 3) & (real >= judge.realism_bar))


def test_trivial_levels_are_not_playable(levels):
    lv = levels[0]
    solved = Level(lv.walls, lv.goals, lv.goals.copy(), lv.player)  # boxes start on their goals
    D = ImageDiscriminator((7, 7, 7), 8, 0, "dcgan", False, True)
    j = LevelJudge(levels_to_tiles(levels[1:5])).judge(D, [solved])
    assert not j.playable[0]


def test_archive_dedups_and_keeps_the_best(levels):
    archive = ScoredArchive(capacity=3)
    D = ImageDiscriminator((7, 7, 7), 8, 0, "dcgan", False, True)
    judge = LevelJudge(np.zeros((1, 7, 7), np.int8), min_novelty=1)
    judge.realism_bar = 0.0
    j = judge.judge(D, levels[:6])
    assert archive_creative(archive, levels[:6], j, "test", 0) == 6 and len(archive) == 3
    assert archive_creative(archive, levels[:6], j, "test", 1) == 0  # the same layouts again: nothing new
    kept = sorted(r["score"] for r in archive.records)
    assert kept == sorted(j.score)[-3:]


def test_player_pool_mixes_to_the_fraction(levels):
    pool = player_pool(levels[:30], levels[30:33], 0.25)
    assert len(pool) == 40 and (pool[30:] == levels_to_tiles(levels[30:33])[np.arange(10) % 3]).all()


def test_solve_rate_of_a_replayed_solution(levels):
    from clm.domains.levels.solver import solve_level

    moves = {lv.key(): solve_level(lv).moves.lower() for lv in levels[:4]}
    codes = {"u": 0, "d": 1, "l": 2, "r": 3}
    step = {"i": 0}

    def policy(obs):  # plays each level's optimal solution, then stands still
        t = step["i"]
        step["i"] += 1
        out = []
        for k in order:
            m = moves[k]
            out.append(codes[m[t]] if t < len(m) else 0)
        return np.array(out)

    order = [lv.key() for lv in levels[:4]]
    assert player_solve_rate(policy, levels[:4]) == 1.0
    step["i"] = 0
    assert player_solve_rate(lambda obs: np.zeros(len(obs), int), levels[:4]) == 0.0


def test_clm_run_generate_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--json", "report=false", *TINY]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("creative_levels", "generated_playable_fraction", "creative_novelty_mean",
                "creative_difficulty_mean", "tile_kl", "player_solve_rate", "wall_seconds", "time_share_player",
                "time_share_gan", "time_share_designer"):
        assert key in summary
    assert summary["status"] == "ok" and summary["rounds"] == 2
    assert abs(sum(v for k, v in summary.items() if k.startswith("time_share_")) - 1) < 1e-6
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    # step 0: the held-out solve rate of the player pre-trained on the solver's demonstrations
    assert [r["step"] for r in rows] == [0, 1, 2] and "player_solve_rate" in rows[0]
    assert all("d_loss" in r and "player_train_solve_rate" in r for r in rows[1:])
    assert rows[0]["player_demo_transitions"] > 0
    grid = json.loads((out / "qd_grid.json").read_text())
    filled = sum(v is not None for row in grid["quality"] for v in row)
    assert grid["filled"] == filled and grid["coverage"] == pytest.approx(filled / (grid["bins"][0] * grid["bins"][1]))
    assert summary["qd_score"] == pytest.approx(sum(v for row in grid["quality"] for v in row if v is not None), abs=0.01)
    assert main(["run", "--resume", str(out), "--json", "rounds=3", "report=false"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["rounds"] == 3 and again["player_env_steps"] > summary["player_env_steps"]
    assert again["qd_score"] >= summary["qd_score"]  # the grid survives the resume and only improves
    gen = tmp_path / "new.txt"
    assert main(["generate", str(out), "-n", "2", "--out", str(gen), "--search", "random",
                 "--min-novelty", "1", "--max-evaluations", "4000"]) == 0
    from clm.domains.levels import read_levels
    from clm.domains.levels.solver import solve_level

    made = read_levels(gen)
    assert len(made) == 2 and all(solve_level(lv).solved for lv in made)
    assert len((tmp_path / "new.txt.jsonl").read_text().splitlines()) == 2
    edited = tmp_path / "edited.txt"  # MAP-Elites editing G's levels (issue 25)
    assert main(["generate", str(out), "-n", "2", "--out", str(edited), "--search", "random_edits",
                 "--difficulty", "2:9", "--min-novelty", "1", "--max-evaluations", "4000"]) == 0
    made = read_levels(edited)
    assert len(made) == 2 and all(2 <= solve_level(lv).pushes <= 9 for lv in made)


@pytest.mark.parametrize("argv, words", [
    (["run", "--data", "boxoban:/no/such/dir"], ["unfiltered/train"]),
    (["run", "--data", "/no/such/file.txt"], ["does not exist"]),
    (["run", "--preset", "nope"], []),
    (["run", "qd_descriptor=nope"], ["wall_density", "box_goal_distance", "realism"]),
    (["run", "max_seconds=-1"], ["max_seconds"]),
    (["generate", "/no/such/run", "-n", "1", "--out", "x.txt"], ["does not exist"]),
    (["generate", ".", "-n", "1", "--out", "x.txt", "--difficulty", "5"], []),
])
def test_bad_input(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for w in words:
        assert w in err


def test_diverging_gan_stops_the_run_and_writes_no_generated_levels(tmp_path, capsys):
    out = tmp_path / "run"
    # every D loss counts as "collapsed": the divergence check fires at the first step
    code = main(["run", "--out", str(out), "report=true", *TINY, "gan.divergence_loss=100",
                 "gan.divergence_patience=1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "gan_diverged" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "gan_diverged" and "diverged" in summary["message"]
    assert not (out / "levels" / "samples.txt").exists() and not (out / "levels" / "archive.txt").exists()
    assert "diverged" in (out / "report.html").read_text().lower()


def test_stuck_player_stops_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    # one vector step per round solves no level (each needs 3+ pushes), and the held-out levels are
    # first played after the stop
    code = main(["run", "--out", str(out), "report=false", *TINY, "player_steps=32", "stuck_rounds=1",
                 "rounds=3", "eval_every=5", "player_demos=false"])
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "player_stuck" and summary["rounds"] == 1
    assert "stuck" in capsys.readouterr().err


def test_wandb_offline_logging(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "report=false", *TINY, "rounds=1", "wandb=offline"]) == 0
    assert list((out / "wandb").glob("offline-run-*"))


def test_player_solves_marks_each_level():
    """A policy that replays a level's solution solves that level; a policy
    that repeats one action solves exactly the levels the reference rules say."""
    from clm.domains.levels.demos import solver_demonstrations
    from clm.domains.levels.generator import generate_levels
    from clm.levels_clm.couplings import player_solve_rate, player_solves

    levels = generate_levels(3, size=7, n_boxes=1, seed=3, min_pushes=3)
    d = solver_demonstrations(levels[:1])
    step = {"t": 0}

    def replay(obs):  # level 0 follows its solution; the others repeat its moves too
        a = d.actions[min(step["t"], len(d.actions) - 1)]
        step["t"] += 1
        return np.full(len(obs), a)

    solved = player_solves(replay, levels)
    assert solved[0]
    assert player_solve_rate(replay, []) == 0.0
    from clm.domains.levels.sim import ReferenceSokoban

    for a in range(4):  # a policy that repeats one action, against the reference rules level by level
        expect = []
        for lv in levels:
            ref = ReferenceSokoban(lv)
            done = False
            for _ in range(120):
                _, term, trunc = ref.step(a)
                if term or trunc:
                    done = term
                    break
            expect.append(done)
        assert list(player_solves(lambda obs: np.full(len(obs), a), levels)) == expect


def test_pool_source_classic_puts_the_classic_generators_levels_in_the_pool():
    from types import SimpleNamespace

    from clm.agents.dqn import DQN
    from clm.core.config import load_config
    from clm.domains.levels.generator import LevelSampler
    from clm.levels_clm.config import CLMConfig
    from clm.levels_clm.domain import SokobanCLM

    cfg = load_config(CLMConfig, None, [*TINY, "pool_source=classic"])
    cpu = torch.device("cpu")
    domain = SokobanCLM(cfg, cpu)
    G, D = domain.build_gan(tuple(domain.real_data().shape[1:]), cpu)
    gan = SimpleNamespace(sampler=G, D=D)
    agent = DQN(domain.agent_config(), envs=domain.agent_env(gan))
    domain.attach(gan, agent, cpu)
    rng = np.random.default_rng(0)
    counts = []
    for rnd in range(6):  # an untrained G makes few playable levels: as many classic levels as those
        row = domain.generate(gan, agent, rng, rnd)
        counts.append(round(row["generated_playable_fraction"] * cfg.samples_per_round))
    assert sum(counts) > 0
    # the direct computation: the classic generator's levels from the domain's own stream, none of G's
    sampler, classic_rng = LevelSampler(cfg.level_size, cfg.n_boxes, cfg.min_pushes), np.random.default_rng(cfg.seed + 7_919)
    expect = [lv for n in counts if n for lv in sampler(classic_rng, n)]
    assert [lv.key() for lv in domain.generated] == [lv.key() for lv in expect]


@pytest.mark.parametrize("key", ["schedule=adaptive", "generated_filter=unsolved", "pool_symmetries=true",
                                 "gan.instance_noise=0.1", "feedback_levels=qd_elites"])
def test_a_removed_option_is_refused_naming_it_and_its_record(tmp_path, capsys, key):
    assert main(["run", "--out", str(tmp_path / "run"), key]) == 2
    err = capsys.readouterr().err
    assert f"'{key.split('=')[0].split('.')[-1]}'" in err and "was removed" in err and "docs/" in err
    assert not (tmp_path / "run").exists()


def test_time_budget_stops_after_a_round_and_evaluates_it(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--json", "report=false", *TINY, "rounds=500", "max_seconds=0.001"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["rounds"] == 1  # the first round ends past the budget
    assert "time budget" in summary["message"] and "--resume" in summary["message"]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert "player_solve_rate" in rows[-1] and rows[-1]["step"] == 1


def test_a_run_stopped_before_any_evaluation_says_so(tmp_path, monkeypatch):
    """Interrupted in its first round, with no pre-training evaluation: the
    summary holds no solve rate (not 0) and the report says it was not recorded."""
    from clm.agents.dqn import DQN
    from clm.report.html import write_report

    calls = {"n": 0}
    real_step = DQN.collect_step

    def interrupting_step(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(DQN, "collect_step", interrupting_step)
    main(["run", "--out", str(tmp_path / "run"), "report=false", *TINY, "player_demos=false"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["player_solve_rate"] is None
    text = write_report(tmp_path / "run").read_text()
    assert "Player solve rate on held-out real levels" in text and "not recorded" in text


def test_clm_runs_with_the_joint_resconv_generator(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--json", "report=false", *TINY, "rounds=1", "gan.arch=resconv",
                 "gan.res_blocks=1", "gan.tile_sample=argmax"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["g_evaluations"] > 0


@pytest.mark.slow
def test_solver_jobs_leave_the_run_unchanged(tmp_path):
    """The judge's solver checks on 2 worker processes give the same run as in-process ones."""
    rows = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        assert main(["run", "--out", str(out), "--json", "report=false", *TINY, f"solver_jobs={jobs}"]) == 0
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        rows.append([{k: v for k, v in r.items() if not k.startswith("time")} for r in lines])  # not the timings
    assert rows[0] == rows[1] and any("generated_playable_fraction" in r for r in rows[0])
