"""clm tune: an Optuna study of clm dqn train that writes its trials as run
folders, resumes from its storage, and rejects bad input clearly."""

import csv
import json

import pytest

from clm.cli.main import main

pytest.importorskip("optuna", reason="optuna is not installed (pip install -e .[tune])")

FAST = ["total_steps=1500", "eval_interval=500", "eval_episodes=3", "learning_starts=200"]


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
    assert (out / "best.png").read_bytes().startswith(b"\x89PNG")
    # a second session continues the same study from its SQLite storage
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--out", str(out), *FAST]) == 0
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 3


def test_bad_tune_input_is_a_clear_error(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("lrr: {type: loguniform, low: 0.001, high: 0.01}\n")
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "unknown key 'lrr'" in capsys.readouterr().err
    space.write_text("lr: {type: loguniform, low: 0, high: 0.01}\n")
    assert main(["tune", "dqn", "--trials", "1", "--space", str(space), "--out", str(tmp_path / "a")]) == 2
    assert "low > 0" in capsys.readouterr().err
    assert main(["tune", "dqn", "--trials", "1", "--backend", "ray", "--out", str(tmp_path / "b")]) == 2
    assert "not built yet" in capsys.readouterr().err
    assert main(["tune", "dqn", "--trials", "1", "--storage", "sqlite:////no/such/dir/x.db",
                 "--out", str(tmp_path / "c")]) == 2
    assert "cannot open the study" in capsys.readouterr().err
    assert main(["tune", "dqn", "--trials", "1", "--out", str(tmp_path / "d"), "lr=0.001"]) == 2
    assert "both fixed" in capsys.readouterr().err
    # the same study name with another space
    out = tmp_path / "e"
    space.write_text("lr: {type: loguniform, low: 0.0001, high: 0.01}\n")
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--space", str(space), "--out", str(out),
                 *FAST]) == 0
    capsys.readouterr()
    assert main(["tune", "dqn", "--env", "CartPole-v1", "--trials", "1", "--out", str(out), *FAST]) == 2
    assert "another command, objective or space" in capsys.readouterr().err
