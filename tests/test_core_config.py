from dataclasses import dataclass, field
from typing import Literal

import pytest

from clm.core.config import load_config, parse_overrides, save_config, read_yaml
from clm.core.errors import UserError


@dataclass
class Inner:
    width: int = 4


@dataclass
class Cfg:
    lr: float = 0.1
    steps: int = 10
    name: str = "a"
    hidden: tuple[int, ...] = (8, 8)
    mode: Literal["x", "y"] = "x"
    target: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.5\nsteps: 20\ninner:\n  width: 7\n")
    cfg = load_config(Cfg, p, ["steps=30", "hidden=16,32", "mode=y", "target=1.5", "inner.width=9"])
    assert cfg.lr == 0.5 and cfg.steps == 30 and cfg.hidden == (16, 32)
    assert cfg.mode == "y" and cfg.target == 1.5 and cfg.inner.width == 9


def test_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ["lr=0.25", "hidden=[1,2]"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(Cfg, base=read_yaml(tmp_path / "config.yaml"))
    assert again == cfg


def test_unknown_key_names_close_match_and_valid_keys():
    with pytest.raises(UserError) as e:
        load_config(Cfg, None, ["lrr=1"])
    msg = str(e.value)
    assert "'lrr'" in msg and "Did you mean 'lr'" in msg and "steps" in msg


@pytest.mark.parametrize("pair, word", [("steps=1.5", "integer"), ("lr=abc", "number"),
                                        ("mode=z", "one of"), ("steps", "key=value")])
def test_bad_values(pair, word):
    with pytest.raises(UserError, match=word):
        load_config(Cfg, None, [pair])


def test_bad_yaml_reports_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("lr: 1\nsteps: [1, 2\n")
    with pytest.raises(UserError, match=r"bad.yaml, line \d"):
        load_config(Cfg, p)


def test_parse_overrides_nested():
    assert parse_overrides(["a.b=1", "a.c=x", "d=true"]) == {"a": {"b": 1, "c": "x"}, "d": True}


@dataclass
class Outer:
    inner: Inner = field(default_factory=lambda: Inner(width=99))
    other: int = 1


def test_nested_section_keeps_the_parents_defaults():
    cfg = load_config(Outer, None, ["other=2"])
    assert cfg.inner.width == 99
    cfg = load_config(Outer, base={"inner": {}}, overrides=["other=3"])
    assert cfg.inner.width == 99 and cfg.other == 3


def test_exponent_without_a_dot_is_a_number(tmp_path):
    assert load_config(Cfg, None, ["lr=1e-3"]).lr == 1e-3
    p = tmp_path / "c.yaml"
    p.write_text("lr: 5e-4\n")
    assert load_config(Cfg, p).lr == 5e-4


# -- bfloat16 support and thread counts (issue 29's bad input) --------------------------------------------------
def test_bf16_flags_are_read_from_cpuinfo():
    from clm.core.runtime import cpu_has_bf16

    assert cpu_has_bf16("processor : 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpu_has_bf16("flags : fpu sse avx2 avx512f\n")
    assert not cpu_has_bf16("model name : avx512_bf16 in a name, not a flag\n")


def test_amp_without_bf16_support_notes_it_and_computes_in_float32(capsys):
    import torch

    from clm.core import runtime

    ok, why = runtime.bf16_support("cpu")
    assert runtime.use_amp(False, "cpu") is False
    assert runtime.use_amp(True, "cpu") is ok
    err = capsys.readouterr().err
    assert (err == "") if ok else ("computing in float32" in err and why in err)
    if not torch.cuda.is_available():
        assert runtime.use_amp(True, "cuda") is False


def test_threads_beyond_the_cores_warn_naming_both(capsys):
    import os

    from clm.core.runtime import set_threads

    cores = os.cpu_count()
    try:
        set_threads(cores + 3)
        err = capsys.readouterr().err
        assert f"threads={cores + 3}" in err and f"{cores} cores" in err
    finally:
        set_threads(1)
