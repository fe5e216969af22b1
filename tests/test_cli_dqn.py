"""The ``clm dqn`` commands end to end, including the user's mistakes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from clm.cli.main import main

FAST = ["total_steps=1500", "learning_starts=500", "train_freq=100", "gradient_steps=10",
        "hidden=32,32", "eval_interval=500", "eval_episodes=3", "log_interval=500"]


@pytest.mark.slow
def test_train_writes_the_run_directory_and_eval_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *FAST]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("eval_return_mean", "eval_return_std", "best_eval_return", "env_steps",
                "wall_seconds", "env_steps_per_second"):
        assert key in line
    assert line["env_steps"] == 1500
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 1500
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_return_mean" in r for r in rows) and any("loss" in r for r in rows)
    assert "total_steps: 1500" in (out / "config.yaml").read_text()
    assert (out / "checkpoints" / "latest" / "weights.safetensors").is_file()
    assert (out / "checkpoints" / "best" / "meta.json").is_file()
    assert list((out / "tb").iterdir())
    assert main(["dqn", "eval", str(out), "--episodes", "4", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip())
    assert ev["episodes"] == 4 and ev["checkpoint"] == "best"
    # a finished run is not overwritten by a new one
    assert main(["dqn", "train", "--out", str(out), *FAST]) == 2


@pytest.mark.slow
def test_resume_extends_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *FAST]) == 0
    capsys.readouterr()
    assert main(["dqn", "train", "--resume", str(out), "--json", "total_steps=2000"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["env_steps"] == 2000


@pytest.mark.parametrize("argv, code, words", [
    (["dqn", "train", "--env", "NoSuchEnv-v0"], 2, ["unknown environment id", "clm dqn envs"]),
    (["dqn", "train", "--env", "Pendulum-v1"], 2, ["continuous", "Discrete"]),
    (["dqn", "train", "lrr=0.1"], 2, ["unknown config key 'lrr'", "Did you mean 'lr'"]),
    (["dqn", "train", "total_steps=abc"], 2, ["must be an integer"]),
    (["dqn", "eval", "/nonexistent/run"], 2, ["does not exist"]),
])
def test_bad_input_gives_a_clear_error(argv, code, words, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for w in words:
        assert w in err


@pytest.mark.slow
def test_corrupt_checkpoint_is_reported(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *FAST]) == 0
    (out / "checkpoints" / "latest" / "state.safetensors").write_bytes(b"\x00broken")
    (out / "summary.json").unlink()
    assert main(["dqn", "train", "--resume", str(out)]) == 1
    err = capsys.readouterr().err
    assert "state.safetensors" in err and "checksum" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "clm.cli.main", "dqn", "train", "--out", str(out),
           "total_steps=200000", "hidden=32,32", "eval_interval=0", "checkpoint_interval=0",
           "learning_starts=500", "train_freq=100", "gradient_steps=10"]
    # A job started in the background inherits SIGINT as ignored (and Python then installs no
    # KeyboardInterrupt handler); restore the default so the test works however it is launched.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    meta = json.loads((out / "checkpoints" / "latest" / "meta.json").read_text())
    assert meta["env_steps"] > 0
    assert main(["dqn", "train", "--resume", str(out), "--json", f"total_steps={meta['env_steps'] + 300}",
                 "eval_episodes=2"]) == 0
