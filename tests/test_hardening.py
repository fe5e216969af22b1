"""Hardening: checkpoints without pickle, interrupted runs that resume to the
same numbers, resume that checks its overrides first, and a clear error (exit
2, no traceback) for each user mistake."""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clm.agents.dqn import DQN, DQNConfig
from clm.agents.training import check_finite
from clm.cli.main import main
from clm.core.checkpoint import decode_state, encode_state, load_checkpoint, save_checkpoint
from clm.core.errors import UserError

SRC = Path(__file__).resolve().parents[1] / "src" / "clm"
DQN_ARGS = ["total_steps=8000", "hidden=16", "learning_starts=300", "train_freq=50", "gradient_steps=5",
            "eval_interval=0", "checkpoint_interval=500", "log_interval=500", "eval_episodes=2"]


# -- checkpoints hold data only ----------------------------------------------------------------------
#: modules that deserialise by running code (pickle and its kin)
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def pickle_uses(source: str) -> list[str]:
    """Every way ``source`` could unpickle: an import of a pickling module (``import pickle``,
    ``from pickle import loads``, ``import pickle as p``), ``torch.load`` without
    ``weights_only=True``, and ``allow_pickle=True`` in any call (``np.load``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append("from torch import load")
        elif isinstance(node, ast.Call):
            kw = {k.arg: k.value for k in node.keywords}
            if isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is not False:
                found.append("allow_pickle=True")
            elif "allow_pickle" in kw and not isinstance(kw["allow_pickle"], ast.Constant):
                found.append("allow_pickle=<expression>")
            func = ast.unparse(node.func)
            if func.endswith("torch.load"):
                weights_only = kw.get("weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    found.append(f"{func}(...) without weights_only=True")
    return found


def test_no_pickle_anywhere_in_the_package():
    bad = {str(p.relative_to(SRC)): u for p in SRC.rglob("*.py") if (u := pickle_uses(p.read_text()))}
    assert not bad, bad


@pytest.mark.parametrize("source", [
    "import pickle", "from pickle import loads", "import pickle as p", "import dill",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)", "np.load(f, allow_pickle=flag)",
    "import torch\ntorch.load('w.pt')", "import torch\ntorch.load('w.pt', weights_only=False)",
    "from torch import load"])
def test_the_pickle_check_sees_each_way_in(source):
    assert pickle_uses(source)


@pytest.mark.parametrize("source", [
    "import numpy as np\nnp.load('x.npy')", "np.load(f, allow_pickle=False)",
    "import torch\ntorch.load('w.pt', weights_only=True)", "x = 'import pickle'"])
def test_the_pickle_check_passes_safe_code(source):
    assert not pickle_uses(source)


def test_checkpoint_folder_is_json_and_safetensors(tmp_path):
    agent = DQN(DQNConfig(total_steps=600, learning_starts=100, train_freq=50, gradient_steps=2, hidden=(8,),
                          eval_interval=0))
    for _ in range(300):
        agent.collect_step()
    agent.save(tmp_path / "ck")
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names == ["meta.json", "state.json", "state.safetensors", "weights.safetensors"]
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert set(meta["files"]) == {"state.json", "state.safetensors", "weights.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in meta["files"].values())


@settings(max_examples=60, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4),
    max_leaves=20))
def test_state_codec_round_trips_plain_data(value):
    tree, arrays = encode_state({"v": value})
    json.dumps(tree)  # the tree is JSON
    assert decode_state(json.loads(json.dumps(tree)), arrays) == {"v": value}


def test_state_codec_keeps_arrays_rng_states_and_refuses_objects():
    state = {"a": np.arange(6, dtype=np.int8).reshape(2, 3), "t": torch.ones(3), "rng": np.random.default_rng(3)
             .bit_generator.state, "inf": float("inf"), "py": random.getstate(), "np": np.random.get_state()}
    tree, arrays = encode_state(state)
    back = decode_state(json.loads(json.dumps(tree)), arrays)
    assert back["a"].dtype == np.int8 and np.array_equal(back["a"], state["a"])
    assert torch.equal(back["t"], state["t"]) and back["rng"] == state["rng"] and back["inf"] == float("inf")
    random.setstate(back["py"])
    np.random.set_state(back["np"])
    with pytest.raises(TypeError, match="plain data"):
        encode_state({"f": lambda: 0})


def test_changed_or_old_checkpoint_files_are_refused_by_name(tmp_path):
    save_checkpoint(tmp_path / "ck", {"w": torch.ones(2)}, {"n": 3}, {"kind": "x"})
    weights, state, _ = load_checkpoint(tmp_path / "ck")
    assert state == {"n": 3}
    path = tmp_path / "ck" / "state.json"
    path.write_text(path.read_text().replace("3", "4"))
    with pytest.raises(UserError, match=r"state\.json does not match the checksum"):
        load_checkpoint(tmp_path / "ck")
    meta = tmp_path / "ck" / "meta.json"
    meta.write_text(json.dumps({"format_version": 1}))
    with pytest.raises(UserError, match="pickles"):
        load_checkpoint(tmp_path / "ck")


def test_dqn_stops_on_non_finite_weights_naming_the_last_good_checkpoint(tmp_path):
    agent = DQN(DQNConfig(total_steps=600, learning_starts=100, train_freq=50, gradient_steps=2, hidden=(8,),
                          eval_interval=0))
    agent.save(tmp_path / "latest")
    with torch.no_grad():
        next(agent.q.parameters()).fill_(float("nan"))
    with pytest.raises(UserError, match=r"NaN or infinite.*last good checkpoint: .*latest \(env step 0\)"):
        check_finite(agent, tmp_path)


# -- interrupted runs resume to the same numbers ------------------------------------------------------
def _start(cmd: list[str]) -> subprocess.Popen:
    # A job started in the background inherits SIGINT as ignored; restore the default.
    return subprocess.Popen([sys.executable, "-m", "clm", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists() and proc.poll() is None:
        time.sleep(0.05)


def _q_weights(folder: Path) -> dict:
    weights, _, meta = load_checkpoint(folder, with_state=False)
    return weights


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.slow
def test_dqn_interrupted_at_a_random_moment_resumes_to_the_uninterrupted_numbers(tmp_path, sig):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["dqn", "train", "--out", str(ref), "--json", *DQN_ARGS]) == 0
    proc = _start(["dqn", "train", "--out", str(run), "--json", *DQN_ARGS])
    _wait_for(run / "checkpoints" / "latest" / "meta.json", proc)
    time.sleep(random.Random(int(sig)).uniform(0.0, 0.8))  # somewhere inside a burst, a log row or a save
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    if not (run / "summary.json").exists():  # it had not finished (else the signal came at its exit): resume it
        assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
        assert main(["dqn", "train", "--resume", str(run), "--json"]) == 0
    a, b = _q_weights(ref / "checkpoints" / "latest"), _q_weights(run / "checkpoints" / "latest")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]  # no step twice, none missing
    assert [r.get("loss") for r in rows] == [r.get("loss") for r in ref_rows]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["exact_resume"] in (None, True)  # None: it finished before the signal


TINY_CLM = ["rounds=3", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4",
            "designer_steps=16", "samples_per_round=16", "eval_every=1", "eval_levels=10",
            "player.learning_starts=64", "player.conv_channels=[8]", "player.hidden=[32]",
            "designer.learning_starts=8", "gan.g_width=8", "gan.d_width=8", "player.pretrain_steps=100",
            "report=false"]


@pytest.mark.slow
def test_clm_ctrl_c_ends_the_round_and_resume_gives_the_uninterrupted_run(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["run", "--out", str(ref), "--json", *TINY_CLM]) == 0
    proc = _start(["run", "--out", str(run), "--json", *TINY_CLM])
    _wait_for(run / "checkpoints" / "clm" / "meta.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err
    if proc.returncode != 0:
        assert proc.returncode == 130 and "its checkpoint is whole" in err, err
        assert main(["run", "--resume", str(run), "--json", "report=false"]) == 0
        assert json.loads((run / "summary.json").read_text())["exact_resume"] is True
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["clm"]  # one checkpoint, every network in it
    a, b = _q_weights(ref / "checkpoints" / "clm"), _q_weights(run / "checkpoints" / "clm")
    assert any(k.startswith("designer.") for k in a) and any(k.startswith("player.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s_ref, s_run = (json.loads((d / "summary.json").read_text()) for d in (ref, run))
    for key in ("g_evaluations", "player_solve_rate", "creative_levels", "qd_score", "player_env_steps"):
        assert s_ref[key] == s_run[key], key
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


# -- resume checks its overrides before it writes ---------------------------------------------------
def test_resume_with_an_override_that_cannot_apply_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *DQN_ARGS[1:], "total_steps=600"]) == 0
    config = (out / "config.yaml").read_text()
    for bad in ("num_envs=4", "buffer_size=5000", "hidden=32"):
        assert main(["dqn", "train", "--resume", str(out), bad]) == 2
        err = capsys.readouterr().err
        assert "cannot change on resume" in err and bad.split("=")[0] in err and "Traceback" not in err
        assert (out / "config.yaml").read_text() == config
    assert main(["dqn", "train", "--resume", str(out), "--json", "total_steps=900"]) == 0


def test_resume_drops_metric_rows_logged_after_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *DQN_ARGS[1:], "total_steps=1000"]) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 1500, "loss": 1.0}) + "\n" + '{"step": 17')  # a stopped session's rows
    assert main(["dqn", "train", "--resume", str(out), "--json", "total_steps=2000"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and 1500 not in steps[:steps.index(1000) + 2]


def test_out_into_an_existing_folder_is_refused(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text("seed: 1\n")
    assert main(["dqn", "train", "--out", str(tmp_path / "old"), *DQN_ARGS]) == 2
    assert "not empty" in capsys.readouterr().err and "--resume" in capsys.readouterr().err + "--resume"
    (tmp_path / "empty").mkdir()
    assert main(["dqn", "train", "--out", str(tmp_path / "empty"), "--json", *DQN_ARGS[1:],
                 "total_steps=400"]) == 0


def test_a_command_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    assert main(["dqn", "train", "--env", "NoSuchEnv-v0"]) == 2
    assert main(["dqn", "train", "--out", str(tmp_path / "a"), "--env", "Pendulum-v1"]) == 2
    assert main(["run", "--out", str(tmp_path / "b"), "data=/nonexistent/levels.txt"]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not Path("runs").exists()


# -- user mistakes: exit 2, a message naming the key or value, no traceback ---------------------------
@pytest.mark.parametrize("argv, words", [
    (["dqn", "train", "lr=-1"], ["lr", "> 0"]),
    (["dqn", "train", "lr=.nan"], ["lr", "finite"]),
    (["dqn", "train", "lr=.inf"], ["lr", "finite"]),
    (["dqn", "train", "lrr=1"], ["unknown config key 'lrr'", "Did you mean 'lr'"]),
    (["run", "eval_every=0"], ["eval_every", ">= 1"]),
    (["run", "gan.steps=5"], ["'steps'", "gan_steps"]),
    (["run", "player.total_steps=5"], ["player.total_steps", "player_steps"]),
    (["run", "designer.seed=5"], ["designer.seed"]),
    (["run", "preset=huge"], ["unknown preset", "small"]),
    (["run", "--data", "010"], ["data path 010 does not exist"]),
    (["dqn", "train", "--out", "/proc/no/such/run"], ["cannot create the run directory"]),
    (["levels", "render", "levels.txt", "--cell", "100000", "--out", "x.png"], ["--cell", "at most"]),
    (["levels", "generate", "-n", "2", "--out", "."], ["it is a folder"]),
    (["levels", "generate", "-n", "2", "--size", "2", "--out", "x.txt"], ["--size", "3x3"]),
    (["run", "level_size=2"], ["level_size", ">= 3"]),
    (["levels", "generate", "-n", "2", "--out", "/proc/no/such/levels.txt"], ["cannot write", "/proc/no"]),
])
def test_user_mistakes_exit_2_with_a_clear_message(argv, words, capsys):
    Path("levels.txt").write_text("; 0\n#####\n#@$.#\n#####\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def test_levels_render_into_a_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "levels.txt").write_text("; 0\n#####\n#@$.#\n#####\n")
    assert main(["levels", "render", str(tmp_path / "levels.txt"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_boxoban_splits_of_different_sizes_are_a_clear_error(tmp_path, capsys):
    for split, row in (("train", "#@$.#"), ("test", "#@$.##")):
        (tmp_path / "unfiltered" / split).mkdir(parents=True)
        (tmp_path / "unfiltered" / split / "000.txt").write_text(f"; 0\n{'#' * len(row)}\n{row}\n{'#' * len(row)}\n")
    assert main(["run", "--out", str(tmp_path / "r"), "--data", f"boxoban:{tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "training levels are 3x5 but the test levels are 3x6" in err and not (tmp_path / "r").exists()


def test_preset_as_a_key_selects_the_preset():
    from argparse import Namespace

    from clm.cli.run import _preset
    from clm.engine import registry

    levels = registry.get("levels")
    args = Namespace(overrides=["preset=boxoban", "seed=1"], config=None, resume=None, preset=None)
    assert _preset(args, levels) == "boxoban"
    assert _preset(Namespace(overrides=["seed=1"], config=None, resume=None, preset=None), levels) is None
    with pytest.raises(UserError, match="the art domain has no presets"):
        _preset(Namespace(overrides=["preset=small"], config=None, resume=None, preset=None), registry.get("art"))


def test_clm_run_honours_the_gan_keys_it_documents(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--json", *TINY_CLM[1:], "rounds=1", "gan.d_steps=2",
                 "gan.feature_matching=0.5", "gan.tile_sample=argmax"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["d_loss"] is not None


# -- property tests: no traceback on any input ---------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="#@$.*+ -_\n;0123456789abc", max_size=200))
def test_level_parser_raises_only_clear_errors(text):
    from clm.domains.levels.io import parse_levels

    try:
        parse_levels(text, "fuzz.txt")
    except UserError as e:
        assert str(e)


KEYS = ["lr", "gamma", "hidden", "num_envs", "tau", "loss", "seed", "target_return", "device", "x", "hidden.a",
        "network", "epsilon_end", ""]
VALUES = ["1", "-1", "0", ".nan", ".inf", "abc", "[1, 2]", "{a: 1}", "1e-3", "true", "null", "", "'", "[", "3.5",
          "huber", "conv"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES), st.sampled_from(["=", ""])), max_size=4))
def test_config_overrides_raise_only_clear_errors(pairs):
    from clm.core.config import load_config

    try:
        cfg = load_config(DQNConfig, overrides=[k + sep + v for k, sep, v in pairs])
    except UserError as e:
        assert e.exit_code == 2 and str(e)
        return
    assert np.isfinite(cfg.lr) and cfg.lr > 0


class _WouldTrain(Exception):
    pass


ARGV_WORDS = ["run", "dqn", "gan", "levels", "report", "generate", "train", "eval", "sample", "render", "stats",
              "solve", "envs", "--out", "--resume", "--json", "--config", "--data", "--env", "-n", "--seed", "x",
              "missing", "lr=0.1", "lr=-1", "rounds=0", "steps=abc", "a=b", "=", "1", "-1", "--episodes",
              "--preset", "small", "boxoban", "digits", "CartPole-v1", "--cell", "--help-me"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(ARGV_WORDS), min_size=1, max_size=6))
def test_cli_raises_no_traceback_on_any_arguments(monkeypatch, capsys, tmp_path_factory, argv):
    """Any argument list ends in help (exit 0) or a user's mistake (exit 2, one
    line starting 'error:' on stderr), never exit 1 (a failure of the program)
    nor a traceback; the training itself is replaced by a stub (this tests the
    argument handling), and a command that would write runs in a fresh folder."""
    import clm.agents.training
    import clm.cli.run
    import clm.engine.loop
    import clm.gan.train

    def stub(*args, **kwargs):
        raise _WouldTrain

    monkeypatch.setattr(clm.agents.training, "learn", stub)
    monkeypatch.setattr(clm.engine.loop, "run_clm", stub)
    monkeypatch.setattr(clm.cli.run, "run_clm", stub)
    monkeypatch.setattr(clm.gan.train, "train", stub)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage errors and --help
        assert e.code in (0, 2)
        assert e.code == 0 or "error:" in capsys.readouterr().err
        return
    except _WouldTrain:
        return
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error:") or "\nerror:" in err, (argv, err)


def test_a_run_folder_of_another_command_is_named_as_such(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["dqn", "train", "--out", str(out), "--json", *DQN_ARGS[1:], "total_steps=400"]) == 0
    assert main(["gan", "eval", str(out)]) == 2
    assert "written by 'clm dqn train', not 'clm gan train'" in capsys.readouterr().err
    assert main(["generate", str(out), "-n", "1", "--out", str(tmp_path / "x.txt")]) == 2
    assert "not 'clm run'" in capsys.readouterr().err
