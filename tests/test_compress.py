"""Compression (clm compress): pruning and int8 quantisation against direct
computation, the safetensors round trip, the command and its bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from clm.agents.networks import QNetwork
from clm.cli.main import main
from clm.tools.compress import (CompressionSpec, compress, from_tensors, load_compressed, prune_global,
                                 prunable_weights, quantize_int8, to_tensors, zero_fraction)
from clm.levels_clm.search import load_run

#: the int8 network's outputs stay within this share of the fp32 outputs' largest magnitude
INT8_TOLERANCE = 0.05


def _net(seed: int = 0) -> QNetwork:
    torch.manual_seed(seed)
    return QNetwork((7, 6, 6), 4, kind="conv", hidden=(24,), conv_channels=(4, 8), dueling=True).eval()


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.7])
def test_global_pruning_zeroes_exactly_the_smallest_fraction(fraction):
    net = _net()
    before = torch.cat([m.weight.detach().reshape(-1) for m, _ in prunable_weights(net)])
    pruned = prune_global(net, fraction)
    after = torch.cat([m.weight.detach().reshape(-1) for m, _ in prunable_weights(pruned)])
    n = before.numel()
    assert int((after == 0).sum()) == round(fraction * n)  # torch's count for a float amount
    assert zero_fraction(pruned) == round(fraction * n) / n
    zeroed = after == 0
    if zeroed.any():  # global: the smallest |w| of the whole network, whatever their layer
        assert before[zeroed].abs().max() <= before[~zeroed].abs().min()
    assert torch.equal(after[~zeroed], before[~zeroed])  # the others are untouched
    # permanent: plain parameters, no masks or hooks left; biases are not pruned; the input net is unchanged
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())
    assert not torch.nn.utils.prune.is_pruned(pruned)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(sorted(net.state_dict().items()),
                                                           sorted(_net().state_dict().items())))


def test_int8_network_is_close_to_fp32():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    net = _net()
    q = quantize_int8(net)
    assert sum(isinstance(m, DynamicLinear) for m in q.modules()) == 4  # value and advantage streams, 2 each
    assert sum(isinstance(m, torch.nn.Conv2d) for m in q.modules()) == 2  # convs stay fp32
    x = (torch.rand(64, 7, 6, 6) < 0.2).float()
    with torch.no_grad():
        want, got = net(x), q(x)
    assert (got - want).abs().max() <= INT8_TOLERANCE * want.abs().max()


@pytest.mark.parametrize("spec", [CompressionSpec(0.5, ""), CompressionSpec(0.0, "int8"), CompressionSpec(0.6, "int8")])
def test_compressed_weights_round_trip_through_safetensors_exactly(spec):
    net = _net()
    small = compress(net, spec)
    blob = save(to_tensors(small, spec))  # bytes of the file: tensors only, no pickle
    back = from_tensors(_net(seed=1), load(blob), spec)  # another init: every weight must come from the file
    x = (torch.rand(32, 7, 6, 6) < 0.2).float()
    with torch.no_grad():
        assert torch.equal(small(x), back(x))
    if spec.prune:  # pruned weights are stored as a bit mask and the non-zeros: the file shrinks
        assert len(blob) < 0.75 * len(save(to_tensors(net, CompressionSpec())))


@pytest.mark.slow
def test_clm_compress_table_matches_the_run_and_round_trips(tiny_clm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_clm_run, run)
    out = tmp_path / "small"
    argv = ["compress", str(run), "--prune", "0.5", "--quantize", "int8", "--out", str(out), "--samples", "16",
            "--repeats", "3", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in out.iterdir()) == ["compression.json", "compression.md", "generator.safetensors",
                                                      "player.safetensors"]
    rows = {(r["network"], r["variant"]): r for r in json.loads((out / "compression.json").read_text())["rows"]}
    assert rows == {(r["network"], r["variant"]): r for r in printed["rows"]}
    summary = json.loads((run / "summary.json").read_text())
    # the fp32 player's held-out solve rate is the run's own final evaluation of the same weights
    assert rows[("player", "fp32")]["heldout_solve_rate"] == summary["player_solve_rate"]
    after = rows[("player", "prune0.5-int8")]
    assert after["zero_fraction"] == pytest.approx(0.5, abs=0.01) and after["bytes"] < rows[("player", "fp32")]["bytes"]
    assert after["speedup"] > 0 and 0 <= after["heldout_solve_rate"] <= 1
    g = rows[("generator", "prune0.5-int8")]
    assert g["tile_kl"] >= 0 and 0 <= g["solvable_fraction"] <= 1
    assert "| player | prune0.5-int8 |" in (out / "compression.md").read_text()
    nets = load_compressed(out)
    run_nets = load_run(run)
    spec = CompressionSpec(0.5, "int8")
    x = torch.from_numpy(np.stack([lv.to_onehot() for lv in run_nets.heldout[:8]])).float()
    with torch.no_grad():
        assert torch.equal(nets["player"](x), compress(run_nets.player, spec)(x))
        z = torch.randn(8, run_nets.G.z_dim)
        assert torch.equal(nets["generator"].probs(z), compress(run_nets.G, spec).probs(z))


def test_clm_compress_bad_input_is_a_clear_error_and_writes_nothing(tiny_clm_run, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text("seed: 0\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    cases = [
        (["compress", str(tiny_clm_run), "--prune", "1.0", "--out", str(tmp_path / "a")], ["[0, 1)"]),
        (["compress", str(tiny_clm_run), "--prune", "-0.1", "--out", str(tmp_path / "a")], ["[0, 1)"]),
        (["compress", str(tiny_clm_run), "--prune", "nan", "--out", str(tmp_path / "a")], ["[0, 1)"]),
        (["compress", str(tiny_clm_run), "--out", str(tmp_path / "a")], ["nothing to do"]),
        (["compress", str(bare), "--prune", "0.3", "--out", str(tmp_path / "a")], ["holds no networks"]),
        (["compress", str(tmp_path / "nowhere"), "--quantize", "int8", "--out", str(tmp_path / "a")], ["does not exist"]),
        (["compress", str(tiny_clm_run), "--quantize", "int8", "--out", str(foreign)], ["holds other things"]),
        (["compress", str(tiny_clm_run), "--quantize", "int4"], ["invalid choice"]),
    ]
    for argv, words in cases:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and all(w in err for w in words), (argv, err)
    assert not (tmp_path / "a").exists() and [p.name for p in foreign.iterdir()] == ["keep.txt"]
    assert not [p for p in tiny_clm_run.iterdir() if p.name.startswith("compressed")]
