"""clm tune: Optuna studies of clm dqn train, clm gan train and clm run that
write their trials as run folders, resume from their storage, run on Ray Tune
with 2 local workers, and reject bad input clearly."""

import csv
import json

import pytest

from clm.cli.main import main

pytest.importorskip("optuna", reason="optuna is not installed (pip install -e .[tune])")

FAST = ["total_steps=1500", "eval_interval=500", "eval_episodes=3", "learning_starts=200"]


@pytest.mark.slow
def test_a_study_runs_trials_as_run_folders_and_resumes_from_its_storage(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "2", "--out", str(out), *FAST]) == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["0", "1"] and all(r["state"] == "complete" for r in rows)
    for r in rows:  # each trial is a normal run folder whose summary holds the objective
        summary = json.loads((out / f"trial-{int(r['trial']):04d}" / "summary.json").read_text())
        assert float(r["eval_return_mean"]) == pytest.approx(summary["eval_return_mean"])
        cfg = (out / f"trial-{int(r['trial']):04d}" / "config.yaml").read_text()
        assert "total_steps: 1500" in cfg and f"lr: {float(r['lr'])}" in cfg
    best = json.loads((out / "best.json").read_text())
    assert best["eval_return_mean"] == max(float(r["eval_return_mean"]) for r in rows)
    # a list choice (the network's widths) reaches the config as a list, and best.json as one
    assert best["params"]["hidden"] in ([64, 64], [128, 128], [256, 256])
    best_cfg = (out / f"trial-{best['trial']:04d}" / "config.yaml").read_text()
    assert f"hidden:\n- {best['params']['hidden'][0]}\n- {best['params']['hidden'][1]}\n" in best_cfg
    assert (out / "best.png").read_bytes().startswith(b"\x89PNG")
    # a second session continues the same study from its SQLite storage
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--out", str(out), *FAST]) == 0
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 3


def test_bad_tune_input_is_a_clear_error(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("lrr: {type: loguniform, low: 0.001, high: 0.01}\n")
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "unknown config key 'lrr'" in capsys.readouterr().err
    space.write_text("lr: {type: loguniform, low: 0, high: 0.01}\n")
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "low > 0" in capsys.readouterr().err
    space.write_text("batch_size: {type: categorical, choices: [0, 32]}\n")  # the config's own range check
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "key 'batch_size' = 0" in capsys.readouterr().err
    space.write_text("player.lrx: {type: uniform, low: 0.1, high: 0.2}\n")  # a nested key of clm run
    assert main(["tune", "run", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "unknown config key 'lrx'" in capsys.readouterr().err
    assert main(["tune", "gan", "--env", "CartPole-v1", "--trials", "1", "--out", str(tmp_path / "b")]) == 2
    assert "--env is an option of clm tune dqn" in capsys.readouterr().err
    assert main(["tune", "dqn", "--trials", "1", "--seeds-per-trial", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--seeds-per-trial must be >= 1" in capsys.readouterr().err
    assert main(["tune", "dqn", "--trials", "1", "--storage", "sqlite:////no/such/dir/x.db",
                 "--out", str(tmp_path / "c")]) == 2
    assert "cannot open the study" in capsys.readouterr().err
    space.write_text("lr: {type: loguniform, low: 0.0001, high: 0.01}\n")
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "d"), "lr=0.001"]) == 2
    assert "both fixed" in capsys.readouterr().err
    # the same study name with another space
    out = tmp_path / "e"
    space.write_text("lr: {type: loguniform, low: 0.0001, high: 0.01}\n")
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--space", str(space), "--out", str(out),
                 *FAST]) == 0
    capsys.readouterr()
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--out", str(out), *FAST]) == 2
    assert "another command, objective, space" in capsys.readouterr().err


@pytest.mark.slow
def test_each_trial_scores_the_mean_of_its_seeds_and_reports_offset_steps(tmp_path):
    from clm.cli.tune import TrialPlan, Tunable, run_trial

    plan = TrialPlan(Tunable("dqn", "dqn", "eval_return_mean", "max", "total_steps",
                             ("env_id=\"CartPole-v1\"", *FAST)), str(tmp_path), "eval_return_mean", 2)
    seen: list[tuple[int, float]] = []
    value = run_trial(plan, 3, {"lr": 1e-3}, lambda step, v: seen.append((step, v)))
    runs = [json.loads((tmp_path / "trial-0003" / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert value == pytest.approx((runs[0]["eval_return_mean"] + runs[1]["eval_return_mean"]) / 2)
    assert "seed: 1" in (tmp_path / "trial-0003" / "seed-1" / "config.yaml").read_text()
    # the second seed's evaluations come after the first's (offset by total_steps + 1), so a pruner
    # compares trials at the same point of the same seed
    steps = [s for s, _ in seen]
    assert steps == sorted(steps) and steps[0] == 500 and any(s > 1500 for s in steps)
    assert seen[-1][1] == pytest.approx(runs[1]["eval_return_mean"])


@pytest.mark.slow
def test_a_gan_study_minimises_the_headline_figure(tmp_path, capsys):
    out = tmp_path / "gan"
    quick = ["steps=30", "threads=1", "batch_size=32", "g_width=16", "d_width=16", "classifier_epochs=1",
             "eval_samples=200", "checkpoint_every=30"]
    assert main(["tune", "gan", "--trials", "2", "--out", str(out), *quick]) == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows)
    for r in rows:
        summary = json.loads((out / f"trial-{int(r['trial']):04d}" / "summary.json").read_text())
        assert float(r["fd_clf_ratio"]) == pytest.approx(summary["fd_clf_ratio"])
    assert json.loads((out / "best.json").read_text())["fd_clf_ratio"] == min(float(r["fd_clf_ratio"]) for r in rows)


@pytest.mark.slow
def test_a_clm_run_study_runs_the_levels_clm(tmp_path, capsys):
    from test_hybrid import TINY

    out = tmp_path / "run"
    assert main(["tune", "run", "--trials", "1", "--out", str(out), *TINY]) == 0
    row = next(csv.DictReader((out / "trials.csv").open()))
    summary = json.loads((out / "trial-0000" / "summary.json").read_text())
    assert row["state"] == "complete" and float(row["player_solve_rate"]) == pytest.approx(summary["player_solve_rate"])
    assert "gan_steps" not in row and float(row["player.lr"]) > 0  # a fixed key leaves the default space
    assert not (out / "trial-0000" / "report.html").exists()  # trials skip the report


@pytest.mark.slow
def test_the_same_study_runs_on_a_local_ray_instance_of_two_workers(tmp_path, capsys, ray_instance):
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install -e .[tune])")
    out = tmp_path / "ray"
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "2", "--backend", "ray", "--workers", "2",
                 "--out", str(out), *FAST]) == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sorted(r["trial"] for r in rows) == ["0", "1"] and all(r["state"] == "complete" for r in rows)
    for r in rows:  # Ray's workers wrote the same run folders as the Optuna backend does
        summary = json.loads((out / f"trial-{int(r['trial']):04d}" / "summary.json").read_text())
        assert float(r["eval_return_mean"]) == pytest.approx(summary["eval_return_mean"])
    # the two trials ran at once: their metrics files overlap in time
    spans = []
    for r in rows:
        d = out / f"trial-{int(r['trial']):04d}"
        spans.append(((d / "config.yaml").stat().st_mtime, (d / "summary.json").stat().st_mtime))
    assert max(a for a, _ in spans) < min(b for _, b in spans)
    # and the Optuna backend continues the study Ray left
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--out", str(out), *FAST]) == 0
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 3


def test_the_ray_backend_without_ray_installed_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError, as where it is not installed
    assert main(["tune", "dqn", "--trials", "1", "--backend", "ray", "--out", str(tmp_path / "x")]) == 2
    assert "--backend ray needs Ray Tune" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
