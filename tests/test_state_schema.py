"""Issue 27, item 1: a checkpoint's state is checked against what the resumed
config builds before any of it is loaded or written. Edited states with
recomputed checksums (what anyone who can write the folder can make) are
refused with exit 2 naming the file and the field, without a traceback, and
the run folder is left byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clm.cli.main import main
from clm.core.checkpoint import load_checkpoint, save_checkpoint
from clm.core.errors import UserError
from clm.core.state_schema import Arr, Float, Int, Rec, StateMismatch, check_depth, like, optimizer_schema, validate

DQN_RUN = ["env_id=CartPole-v1", "num_envs=2", "total_steps=400", "learning_starts=100", "train_freq=50",
           "gradient_steps=2", "hidden=16", "eval_interval=0", "eval_episodes=2", "log_interval=200",
           "buffer_size=1000"]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def rewrite(ckpt: Path, weights: dict, state: dict, meta: dict) -> None:
    """Save an edited checkpoint with its checksums recomputed (what a hand edit can do)."""
    save_checkpoint(ckpt, weights, state, {k: v for k, v in meta.items() if k not in ("files", "format_version")})


# -- the schema itself -----------------------------------------------------------------------------
def test_schema_refuses_cast_dtypes_shapes_ranges_and_keys():
    ref = {"w": torch.zeros(3, 2), "n": 4, "x": 0.5, "a": np.zeros(5, np.int64)}
    schema = like(ref)
    validate({"w": torch.ones(3, 2), "n": 7, "x": 1, "a": np.arange(5)}, schema, "ck")  # same structure: fine
    for bad, field in [({**ref, "w": torch.zeros(3, 2, dtype=torch.float64)}, "w"),   # no silent float64 cast
                       ({**ref, "w": torch.zeros(3, 2, dtype=torch.int8)}, "w"),
                       ({**ref, "w": torch.zeros(2, 3)}, "w"), ({**ref, "a": np.zeros(5, np.int32)}, "a"),
                       ({**ref, "n": "abc"}, "n"), ({**ref, "n": 10**30}, "n"), ({**ref, "n": True}, "n"),
                       ({k: v for k, v in ref.items() if k != "x"}, "x"), ({**ref, "extra": 1}, "extra")]:
        with pytest.raises(StateMismatch) as e:
            validate(bad, schema, "ck/state.json")
        assert e.value.exit_code == 2 and e.value.path == field and "ck/state.json" in str(e.value)
    with pytest.raises(StateMismatch, match=r"field round: expected an integer in \[0, 3\], found int -5"):
        validate({"round": -5}, Rec({"round": Int(0, 3)}), "ck")
    with pytest.raises(StateMismatch):
        validate(float("nan"), Float(0.0, 1.0), "ck")
    assert Arr(np.dtype(np.int8), (None, 2), max_rows=3).check(np.zeros((3, 2), np.int8), "") is None
    with pytest.raises(StateMismatch):
        validate(np.zeros((4, 2), np.int8), Arr(np.dtype(np.int8), (None, 2), max_rows=3), "ck")


def test_optimizer_schema_follows_the_parameters():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    good = opt.state_dict()
    validate(good, optimizer_schema(opt), "ck")
    bad = {"state": {0: {**good["state"][0], "exp_avg": torch.zeros(3, 2)}}, "param_groups": good["param_groups"]}
    with pytest.raises(StateMismatch, match="state.0.exp_avg"):
        validate(bad, optimizer_schema(opt), "ck")
    groups = [{**good["param_groups"][0], "lr": -5.0}]  # not what the config sets
    with pytest.raises(StateMismatch, match="lr"):
        validate({"state": good["state"], "param_groups": groups}, optimizer_schema(opt), "ck")


def test_json_nested_100000_deep_is_refused_naming_the_file(tmp_path):
    ck = tmp_path / "ck"
    save_checkpoint(ck, {"w": torch.ones(2)}, {"step": 1}, {"kind": "x"})
    raw = ("[" * 100_000 + "]" * 100_000).encode()
    meta = json.loads((ck / "meta.json").read_text())
    meta["files"]["state.json"] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (ck / "state.json").write_bytes(raw)
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as e:
        load_checkpoint(ck)
    assert e.value.exit_code == 2 and "state.json" in str(e.value)
    with pytest.raises(UserError, match="deeper than 64"):
        check_depth(json.loads("[" * 70 + "]" * 70), "x")


def test_an_array_listed_with_another_dtype_is_not_cast(tmp_path):
    ck = tmp_path / "ck"
    save_checkpoint(ck, {}, {"a": np.arange(3, dtype=np.int64)}, {"kind": "x"})
    tree = json.loads((ck / "state.json").read_text())
    tree["a"]["dtype"] = "<f8"
    raw = json.dumps(tree).encode()
    meta = json.loads((ck / "meta.json").read_text())
    meta["files"]["state.json"] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    (ck / "state.json").write_bytes(raw)
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="stored as int64 but listed as <f8"):
        load_checkpoint(ck)


# -- a real DQN run's checkpoint, edited by Hypothesis -----------------------------------------------
@pytest.fixture(scope="module")
def dqn_run():
    root = Path(tempfile.mkdtemp(prefix="clm-schema-"))
    assert main(["dqn", "train", "--out", str(root / "run"), "--json", *DQN_RUN]) == 0
    shutil.copytree(root / "run", root / "copy")  # the control: the unedited checkpoint resumes (exactly)
    assert main(["dqn", "train", "--resume", str(root / "copy"), "--json", "total_steps=500"]) == 0
    assert json.loads((root / "copy" / "summary.json").read_text())["exact_resume"] is True
    yield root / "run"
    shutil.rmtree(root, ignore_errors=True)


def _paths(tree, prefix=()):
    """Every (path, value) of a state tree below the top, except the saved config (any plain data)."""
    out = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for k, v in items:
        if k in ("config", "files", "format_version"):
            continue
        out.append((prefix + (k,), v))
        if isinstance(v, (dict, list, tuple)) and len(v) < 50:  # long lists (RNG words) are sampled by their head
            out += _paths(v, prefix + (k,))
    return out


_DELETE = object()


def _with(tree, path, value):
    """``tree`` with the item at ``path`` replaced by ``value`` (deleted: ``_DELETE``); lists and tuples stay so."""
    k, rest = path[0], path[1:]
    new = value if not rest else _with(tree[k], rest, value)
    if isinstance(tree, dict):
        out = {**tree, k: new}
        if new is _DELETE:
            del out[k]
        return out
    items = list(tree)
    items[k] = new
    return type(tree)(items)


def _mutate(kind: str, value, other_dtype: int):
    """The edited value, or None when ``kind`` does not apply to ``value``."""
    if kind == "type":
        if isinstance(value, (bool, int, float)) or value is None:
            return "abc"
        if isinstance(value, str):
            return 12345
        if isinstance(value, (np.ndarray, torch.Tensor)):
            return [1, 2]
        if isinstance(value, dict):
            return [1]
        if isinstance(value, list):
            return "abc"
    if kind == "dtype" and isinstance(value, (np.ndarray, torch.Tensor)):
        dtypes = [np.int8, np.float64, np.float16, np.int32, np.uint8]
        if isinstance(value, torch.Tensor):
            t = [torch.int8, torch.float64, torch.float16, torch.int32, torch.uint8]
            choices = [d for d in t if d != value.dtype]
            return value.to(choices[other_dtype % len(choices)])
        choices = [d for d in dtypes if np.dtype(d) != value.dtype]
        return value.astype(choices[other_dtype % len(choices)])
    if kind == "ndim" and isinstance(value, (np.ndarray, torch.Tensor)):
        return value[..., None]
    if kind == "huge" and isinstance(value, int) and not isinstance(value, bool):
        return 2**200  # past any counter or RNG word (10**30 is a valid PCG64 state: refused where a range says so)
    if kind == "deep" and not isinstance(value, (dict,)):
        deep: list = []
        for _ in range(100):
            deep = [deep]
        return deep
    return None


KINDS = ["type", "dtype", "ndim", "huge", "deep", "missing", "extra"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_checkpoint_edited_with_recomputed_checksums_is_refused_and_the_folder_unchanged(dqn_run, data, capsys):
    weights, state, meta = load_checkpoint(dqn_run / "checkpoints" / "latest")
    part = data.draw(st.sampled_from(["state", "meta", "weights"]), label="part")
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    tree = {"state": state, "meta": meta, "weights": weights}
    target = tree[part]
    paths = _paths(target) if part != "weights" else [((k,), v) for k, v in target.items()]
    if kind == "extra":  # (an env's state may gain keys as it runs: not there)
        parents = [((), target)] + [(p, v) for p, v in paths if isinstance(v, dict) and "env" not in p]
        path, node = data.draw(st.sampled_from(parents), label="where")
        extra = {**node, "zz_extra": torch.zeros(1) if part == "weights" else 1}
        tree[part] = _with(target, path, extra) if path else extra
    elif kind == "missing":
        keyed = [(p, v) for p, v in paths if not isinstance(p[-1], int)]
        path, _ = data.draw(st.sampled_from(keyed), label="where")
        tree[part] = _with(target, path, _DELETE)
    else:
        candidates = [(p, v) for p, v in paths if _mutate(kind, v, 0) is not None]
        if part == "weights":
            candidates = [(p, v) for p, v in candidates if kind in ("dtype", "ndim")]
        if not candidates:
            return
        path, value = data.draw(st.sampled_from(candidates), label="where")
        tree[part] = _with(target, path, _mutate(kind, value, data.draw(st.integers(0, 4), label="dtype")))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(dqn_run, run)
        rewrite(run / "checkpoints" / "latest", tree["weights"], tree["state"], tree["meta"])
        before = folder_bytes(run)
        capsys.readouterr()
        code = main(["dqn", "train", "--resume", str(run), "--json"])
        err = capsys.readouterr().err
        assert code == 2, (part, kind, path, err)
        assert "Traceback" not in err and "checkpoint" in err and str(run) in err, err
        assert folder_bytes(run) == before, (part, kind, path)


def test_stepped_env_state_without_its_generator_is_refused(dqn_run, capsys):
    """CI's find (stop 30): a CartPole checkpoint whose innermost env lost ``_np_random`` resumed, inexactly."""
    weights, state, meta = load_checkpoint(dqn_run / "checkpoints" / "latest")
    assert meta["env_steps"] > 0
    path = next(p for p, _ in _paths(state) if p[-1] == "_np_random")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(dqn_run, run)
        rewrite(run / "checkpoints" / "latest", weights, _with(state, path, _DELETE), meta)
        before = folder_bytes(run)
        capsys.readouterr()
        code = main(["dqn", "train", "--resume", str(run), "--json"])
        err = capsys.readouterr().err
        assert code == 2 and "_np_random" in err and "missing" in err, err
        assert folder_bytes(run) == before


# -- a real CLM run's checkpoint: the probes of issue 27 ---------------------------------------------
TINY_CLM = ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4", "designer_steps=16",
            "samples_per_round=16", "eval_every=1", "eval_levels=10", "player.learning_starts=64",
            "player.conv_channels=[8]", "player.hidden=[32]", "designer.learning_starts=8", "gan.g_width=8",
            "gan.d_width=8", "player.pretrain_steps=100", "report=false"]


def _g_weight(w):
    return next(k for k in w if k.startswith("gan.G.") and k.endswith("weight") and w[k].dim() == 2)


PROBES = {  # the edits of issue 27 that ended in a traceback or were accepted silently
    "round_minus_5": lambda w, s, m: (w, {**s, "state": {**s["state"], "round": -5}}, {**m, "round": -5}),
    "round_abc": lambda w, s, m: (w, {**s, "state": {**s["state"], "round": "abc"}}, m),
    "round_10_30": lambda w, s, m: (w, {**s, "state": {**s["state"], "round": 10**30}}, m),
    "round_not_meta_round": lambda w, s, m: (w, {**s, "state": {**s["state"], "round": 1}}, m),
    "g_weight_wrong_shape": lambda w, s, m: ({**w, _g_weight(w): torch.zeros(3, 3)}, s, m),
    "g_weight_int8": lambda w, s, m: ({**w, _g_weight(w): w[_g_weight(w)].to(torch.int8)}, s, m),
    "g_weight_float64": lambda w, s, m: ({**w, _g_weight(w): w[_g_weight(w)].double()}, s, m),
    "gan_key_missing": lambda w, s, m: (w, {k: v for k, v in s.items() if k != "gan"}, m),
    "timer_as_list": lambda w, s, m: (w, {**s, "timer": [1, 2]}, m),
    "replay_pos_10_12": lambda w, s, m: (w, {**s, "player": {**s["player"], "replay": {
        **s["player"]["replay"], "pos": 10**12}}}, m),
    "replay_array_wrong_shape": lambda w, s, m: (w, {**s, "player": {**s["player"], "replay": {
        **s["player"]["replay"], "obs": s["player"]["replay"]["obs"][:, :, :3]}}}, m),
    "rng_of_another_bit_generator": lambda w, s, m: (w, {**s, "rng": np.random.MT19937(0).state}, m),
    "archive_tiles_out_of_range": lambda w, s, m: (w, {**s, "domain": {**s["domain"], "generated": {
        "tiles": np.full((1, 7, 7), 9, np.int8), "names": [""]}}}, m),
}


@pytest.fixture(scope="module")
def clm_run():
    root = Path(tempfile.mkdtemp(prefix="clm-schema-run-"))
    assert main(["run", "--out", str(root / "run"), "--json", *TINY_CLM]) == 0
    yield root / "run"
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_clm_checkpoint_probes_of_issue_27_are_refused_before_loading(clm_run, tmp_path):
    """Each probe, at the loop's loader (the parts built once from the run's config)."""
    from clm.core.config import load_config, read_yaml
    from clm.core.runtime import rng_state
    from clm.engine.loop import build_parts, load_state
    from clm.engine.parts import PartTimer
    from clm.levels_clm.config import CLMConfig

    cfg = load_config(CLMConfig, base=read_yaml(clm_run / "config.yaml"))
    domain, _, gan, agent = build_parts(cfg, torch.device("cpu"), None)
    weights, state, meta = load_checkpoint(clm_run / "checkpoints" / "clm")
    for name, edit in PROBES.items():
        ckpt = tmp_path / name / "checkpoints"
        rewrite(ckpt / "clm", *edit(weights, state, meta))
        before = folder_bytes(tmp_path / name)
        with pytest.raises(UserError) as e:
            load_state(ckpt, cfg, gan, agent, domain, PartTimer(), np.random.default_rng(0))
        assert e.value.exit_code == 2 and str(ckpt / "clm") in str(e.value), (name, str(e.value))
        assert folder_bytes(tmp_path / name) == before, name
    rng_before = rng_state()["torch"]
    rewrite(tmp_path / "same" / "checkpoints" / "clm", weights, state, meta)  # the control: the run's own state
    _, exact = load_state(tmp_path / "same" / "checkpoints", cfg, gan, agent, domain, PartTimer(),
                          np.random.default_rng(0))
    assert exact is True and not torch.equal(rng_before, rng_state()["torch"])


@pytest.mark.slow
def test_clm_resume_of_round_minus_5_exits_2_and_changes_nothing(clm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(clm_run, run)
    weights, state, meta = load_checkpoint(run / "checkpoints" / "clm")
    rewrite(run / "checkpoints" / "clm", *PROBES["round_minus_5"](weights, state, meta))
    before = folder_bytes(run)
    assert main(["run", "--resume", str(run), "--json"]) == 2
    err = capsys.readouterr().err
    assert "field round" in err and "[0, 2]" in err and "-5" in err and "Traceback" not in err, err
    assert folder_bytes(run) == before  # no metric rows overwritten, no config.yaml rewritten, no summary
