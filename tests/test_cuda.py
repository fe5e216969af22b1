"""GPU readiness: every command on device=cuda, and the torch Sokoban batch on
CUDA against the CPU. These skip without a CUDA device (CI has none); the
GPU machine runs them through ``scripts/gpu_checks.sh``."""

import json

import numpy as np
import pytest
import torch

from clm.cli.main import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: run on a GPU machine (scripts/gpu_checks.sh)")


def test_torch_sokoban_batch_on_cuda_equals_the_cpu_batch():
    from clm.domains.levels.generator import generate_levels
    from clm.domains.levels.sim import TorchSokobanBatch

    levels = generate_levels(64, size=8, n_boxes=2, seed=0)
    cpu = TorchSokobanBatch(levels, 256, device="cpu", max_steps=30, seed=1)
    gpu = TorchSokobanBatch(levels, 256, device="cuda", max_steps=30, seed=1)
    assert torch.equal(cpu.reset().cpu(), gpu.reset().cpu())
    rng = np.random.default_rng(2)
    for _ in range(200):
        a = torch.as_tensor(rng.integers(0, 4, 256))
        out_c, out_g = cpu.step(a), gpu.step(a.cuda())
        for x, y in zip(out_c[:4], out_g[:4]):
            assert torch.equal(x.cpu(), y.cpu())


@pytest.mark.parametrize("amp", ["false", "true"])
def test_dqn_trains_on_cuda(tmp_path, capsys, amp):
    assert main(["dqn", "train", "--env", "CartPole-v1", "--out", str(tmp_path / "d"), "--json", "device=cuda",
                 f"amp={amp}", "total_steps=3000", "eval_interval=0", "eval_episodes=3"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["gradient_steps"] > 0


@pytest.mark.parametrize("data", ["digits", "levels"])
def test_gan_trains_on_cuda_with_amp(tmp_path, capsys, data, boxoban_dir):
    source = "digits" if data == "digits" else f"levels:{boxoban_dir / 'unfiltered' / 'train' / '000.txt'}"
    assert main(["gan", "train", "--data", source, "--out", str(tmp_path / "g"), "--json", "device=cuda", "amp=true",
                 "steps=60", "batch_size=32", "classifier_epochs=1", "eval_samples=200", "solve_samples=20"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["device"].startswith("cuda")
    assert main(["gan", "sample", str(tmp_path / "g"), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0


@pytest.mark.parametrize("domain, extra", [
    ("levels", ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4",
                "designer_steps=16", "samples_per_round=16", "eval_every=1", "eval_levels=10",
                "player.learning_starts=64", "player.pretrain_steps=200", "gan.amp=true"]),
    ("art", ["rounds=2", "player_steps=256", "gan_steps=10", "gan_warmup_steps=20", "eval_canvases=16",
             "samples_per_round=16", "eval_every=1"]),
    ("text", ["rounds=2", "gan_warmup_steps=40", "gan_steps=10", "player_steps=256", "eval_every=1",
              "eval_words=32", "samples_per_round=16", "player.learning_starts=64", "max_len=8"]),
])
def test_clm_runs_on_cuda(tmp_path, capsys, domain, extra):
    out = tmp_path / domain
    assert main(["run", "--domain", domain, "--out", str(out), "--json", "device=cuda", "report=true", *extra]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "ok" and (out / "report.html").exists()
    assert main(["run", "--resume", str(out), "--json", "rounds=3"]) == 0
    n_out = tmp_path / ("gen.txt" if domain != "art" else "gen.png")
    assert main(["generate", str(out), "-n", "4", "--out", str(n_out)]) == 0
