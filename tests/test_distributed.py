"""Data-parallel training (torchrun; clm.core.distributed): gloo processes on
the CPU against one process at the same global batch.

N processes at global batch B must compute what one process computes at B:
the same rows (drawn once, sliced by rank), statistics over the global
batch, gradients averaged. They add the same numbers in another order, so
results agree to float32 rounding, not bit for bit. Tolerances used below:

- gradients of one update: rtol 1e-4, atol 1e-6 (float32 sums of 64-128
  rows in another order differ by about 1e-7 of their size);
- after several Adam steps: the networks' *outputs* to atol 1e-5, D's
  parameters to atol 1e-6 and the Q-network's to atol 1e-5 (measured after 6
  GAN steps: outputs 5e-7 apart, D's parameters 1e-8; one update's
  gradients 2e-7). Not G's parameters one by
  one: the bias of a layer that feeds a BatchNorm has a true gradient of 0
  (BatchNorm removes it), so its gradient is rounding noise, which Adam
  scales up to a step of about lr whatever its sign: those biases wander by
  ~lr per step in one process as in two, differently, with no effect on
  what G computes.
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from clm.cli.main import main
from clm.core import distributed
from clm.core.checkpoint import load_checkpoint
from clm.core.errors import UserError

WORLD = 2


# -- the harness: N processes with torchrun's environment, gloo on the CPU --------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn, rank: int, world: int, port: int, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    os.chdir(args[0])  # the worker's own output folder: a stray write would land there
    with distributed.process_group("cpu"):
        fn(rank, world, *args)


def spawn(fn, *args, world: int = WORLD, timeout: float = 240) -> None:
    """Run ``fn(rank, world, *args)`` in ``world`` processes joined by a gloo
    group, as torchrun would start them (``args[0]``: a folder, their cwd)."""
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_entry, args=(fn, r, world, port, args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * world, "a rank failed (its traceback is above)"


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float, what: str) -> None:
    torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


# -- pure functions: devices, backends, torchrun's variables -----------------------------------------
def test_rank_device_and_backend_selection():
    cpu = torch.device("cpu")
    assert distributed.rank_device("cpu", 1, 4) == cpu
    assert distributed.rank_device("auto", 0, 0) == cpu
    assert distributed.rank_device("auto", 1, 2) == torch.device("cuda", 1)
    assert distributed.rank_device("cuda", 3, 4) == torch.device("cuda", 3)
    assert distributed.backend_for(torch.device("cuda", 3)) == "nccl"
    assert distributed.backend_for(cpu) == "gloo"
    for requested, local_rank, gpus, words in [("cuda", 0, 0, "no CUDA GPU"), ("cuda", 2, 2, "--nproc_per_node 2"),
                                               ("auto", 1, 1, "one GPU per process"), ("cuda:1", 0, 2, "device=cuda"),
                                               ("tpu", 0, 0, "unknown device")]:
        with pytest.raises(UserError, match=words) as e:
            distributed.rank_device(requested, local_rank, gpus)
        assert e.value.exit_code == 2


def test_launch_env_and_plain_process():
    assert distributed.launch_env({}) is None
    assert distributed.launch_env({"WORLD_SIZE": "1", "RANK": "0"}) is None  # a world of one runs as a plain process
    assert distributed.launch_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == distributed.LaunchEnv(3, 4, 1)
    for bad in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "x"}, {"WORLD_SIZE": "2", "RANK": "2"}):
        with pytest.raises(UserError, match="torchrun"):
            distributed.launch_env(bad)
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    x = torch.randn(6, 3)
    assert torch.equal(distributed.batch_mean(x), x.mean(0))
    assert torch.equal(distributed.batch_std(x), x.std(0, unbiased=False))
    assert distributed.mean_across_ranks({"a": 1.5}) == {"a": 1.5}
    # a plain process draws exactly torch's default stream
    torch.manual_seed(3)
    draws = distributed.BatchDraws.for_training(3, torch.device("cpu"))
    got = (draws.randint(10, 8), draws.randn(8, 2))
    torch.manual_seed(3)
    assert torch.equal(got[0], torch.randint(10, (8,))) and torch.equal(got[1], torch.randn(8, 2))


def test_cross_rank_batchnorm_keeps_the_network_as_it_was():
    """The swap touches no tensor and no name: optimisers, checkpoints and an
    EMA copy see the same network; without a group it is plain BatchNorm."""
    from clm.gan.models import ImageGenerator

    torch.manual_seed(0)
    G = ImageGenerator((1, 8, 8), z_dim=4, width=8, arch="dcgan")
    before = {k: v for k, v in G.state_dict(keep_vars=True).items()}
    plain = copy.deepcopy(G)
    assert distributed.use_cross_rank_batchnorm(G) == 3
    after = G.state_dict(keep_vars=True)
    assert list(after) == list(before) and all(after[k] is before[k] for k in before)
    z = torch.randn(5, 4)
    for mode in ("train", "eval"):
        getattr(G, mode)(), getattr(plain, mode)()
        torch.testing.assert_close(G(z), plain(z), rtol=0, atol=0)
    distributed.restore_batchnorm(G)
    assert sum(isinstance(m, nn.BatchNorm2d) or isinstance(m, nn.BatchNorm1d) for m in G.modules()) == 3


def test_local_share_is_a_clear_error():
    assert distributed.local_share(128, "batch_size", 4) == 32
    with pytest.raises(UserError, match=r"batch_size=7 does not divide over 2 processes") as e:
        distributed.local_share(7, "batch_size", 2)
    assert e.value.exit_code == 2


# -- the collectives against direct computation on the whole batch ----------------------------------
def _collectives_worker(rank: int, world: int, out: str) -> None:
    torch.manual_seed(0)  # the same global data on every rank; each takes its slice
    B = 8
    k = B // world
    mine = slice(rank * k, (rank + 1) * k)
    x_all = torch.randn(B, 5, 3, 3, dtype=torch.float64)
    w_all = torch.randn(B, 5, 3, 3, dtype=torch.float64)
    bn = nn.BatchNorm2d(5, momentum=None).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    net = nn.Sequential(bn)
    assert distributed.use_cross_rank_batchnorm(net) == 1
    x = x_all[mine].clone().requires_grad_(True)
    for _ in range(2):  # twice: the running statistics' cumulative average
        y = net(x)
    (y * w_all[mine]).sum().backward()
    # a gradient penalty through the global std (double backward through the collective)
    lin = nn.Linear(4, 6).double()
    v_all = torch.randn(world, 6, dtype=torch.float64)  # each rank's own loss weights
    u_all = torch.randn(B, 4, dtype=torch.float64)
    u = u_all[mine].clone().requires_grad_(True)
    std = distributed.batch_std(torch.tanh(lin(u)))
    (gu,) = torch.autograd.grad((std * v_all[rank]).sum(), u, create_graph=True)
    gu.pow(2).sum().backward()
    param_grads = [bn.weight.grad, bn.bias.grad, lin.weight.grad, lin.bias.grad]
    distributed.average_gradients(param_grads)  # the mean over ranks; times world below: the sum
    distributed.restore_batchnorm(net)
    assert isinstance(net[0], nn.BatchNorm2d)
    save_file({"y": y.detach(), "x_grad": x.grad, "gu": gu.detach(), "std": std.detach(),
               "running_mean": bn.running_mean, "running_var": bn.running_var,
               **{f"param_grad{i}": g * world for i, g in enumerate(param_grads)}}, f"{out}/rank{rank}.safetensors")


@pytest.mark.slow
def test_cross_rank_statistics_match_the_whole_batch(tmp_path):
    spawn(_collectives_worker, str(tmp_path))
    # the same computation on the whole batch in one process, with plain BatchNorm and torch's std
    torch.manual_seed(0)
    x_all = torch.randn(8, 5, 3, 3, dtype=torch.float64)
    w_all = torch.randn(8, 5, 3, 3, dtype=torch.float64)
    bn = nn.BatchNorm2d(5, momentum=None).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    x = x_all.clone().requires_grad_(True)
    for _ in range(2):
        y = bn(x)
    (y * w_all).sum().backward()
    lin = nn.Linear(4, 6).double()
    v_all = torch.randn(WORLD, 6, dtype=torch.float64)
    u = torch.randn(8, 4, dtype=torch.float64).requires_grad_(True)
    std = torch.tanh(lin(u)).std(0, unbiased=False)
    (gu,) = torch.autograd.grad((std * v_all.sum(0)).sum(), u, create_graph=True)  # the ranks' losses add up
    gu.pow(2).sum().backward()
    ref_param_grads = [bn.weight.grad, bn.bias.grad, lin.weight.grad, lin.bias.grad]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(WORLD)]
    cat = lambda key: torch.cat([r[key] for r in ranks])  # noqa: E731
    _close(cat("y"), y.detach(), 1e-10, 1e-10, "BatchNorm output")
    _close(cat("x_grad"), x.grad, 1e-10, 1e-10, "BatchNorm input gradient")
    _close(cat("gu"), gu.detach(), 1e-10, 1e-10, "gradient of the global std")
    for r in ranks:
        _close(r["std"], std.detach(), 1e-12, 1e-12, "global std")
        _close(r["running_mean"], bn.running_mean, 1e-12, 1e-12, "running mean")
        _close(r["running_var"], bn.running_var, 1e-12, 1e-12, "running variance (unbiased)")
        for i, g in enumerate(ref_param_grads):
            _close(r[f"param_grad{i}"], g, 1e-10, 1e-10, f"parameter gradient {i} (double backward)")


# -- the GAN: one update, then whole runs of clm gan train ------------------------------------------
#: configs whose every random draw is the loop's (no Gumbel or DiffAugment noise inside the networks,
#: which each rank draws from its own seed): they cover BatchNorm in G (1d and 2d), the minibatch-std
#: feature (over a flat layer and as a module), spectral norm, WGAN-GP's double backward through
#: DDP, feature matching's global means, conditions and label smoothing
GAN_VARIANTS = {
    "mlp-ns": ["arch=mlp", "loss=ns"],
    "dcgan-wgan-gp": ["arch=dcgan", "loss=wgan-gp", "spectral_norm=true", "feature_matching=0.5", "g_width=16",
                      "d_width=16"],
    "resconv-hinge": ["arch=resconv", "loss=hinge", "res_blocks=2", "g_width=16", "d_width=16", "conditional=false"],
}
GAN_BASE = ["batch_size=16", "g_width=32", "d_width=16", "final_eval=false", "log_every=1", "image_every=1000",
            "checkpoint_every=1000"]


def _gan_one_update_worker(rank: int, world: int, out: str) -> None:
    from clm.core.config import load_config
    from clm.core.runtime import seed_everything
    from clm.gan.steps import AdversarialPair
    from clm.gan.train import GanConfig, build_models
    from clm.gan_adapters.domains import gan_domain

    cpu = torch.device("cpu")
    for name, overrides in GAN_VARIANTS.items():
        cfg = load_config(GanConfig, None, GAN_BASE + overrides)
        data = gan_domain(cfg.data).load(cfg)
        seed_everything(cfg.seed)
        G, D = build_models(cfg, data)
        pair = AdversarialPair(G, D, cfg)
        draws = distributed.BatchDraws.for_training(cfg.seed, cpu)
        if draws.distributed:
            pair.data_parallel(cpu)
        cond = (lambda c: c) if cfg.conditional else (lambda c: None)
        n, B = len(data.train_x), cfg.batch_size
        idx, fidx = draws.randint(n, B), draws.randint(n, B)
        z, alpha = draws.randn(B, cfg.z_dim), draws.rand(B, 1, 1, 1)
        d = pair.d_step(data.train_x[idx], cond(data.train_cond[idx]), cond(data.train_cond[fidx]), z=z, gp_alpha=alpha)
        d_grads = {f"D.{k}": p.grad.clone() for k, p in D.named_parameters()}
        z = draws.randn(B, cfg.z_dim)
        c = data.train_cond[draws.randint(n, B)]
        g = pair.g_step(len(z), cpu, cond(c), real_for_features=data.train_x[idx], cond_for_features=cond(data.train_cond[idx]), z=z)
        g_grads = {f"G.{k}": p.grad.clone() for k, p in G.named_parameters()}
        figures = distributed.mean_across_ranks({**d, **g})
        if rank == 0:
            save_file({**d_grads, **g_grads, "figures": torch.tensor([figures[k] for k in sorted(figures)])},
                      f"{out}/{name}-world{world}.safetensors")


@pytest.mark.slow
def test_one_gan_update_on_two_ranks_is_one_process_update(tmp_path):
    """D's and G's gradients of one update (averaged over 2 ranks by DDP)
    against one process's on the whole global batch."""
    spawn(_gan_one_update_worker, str(tmp_path))
    _gan_one_update_worker(0, 1, str(tmp_path))
    for name in GAN_VARIANTS:
        two = load_file(tmp_path / f"{name}-world2.safetensors")
        one = load_file(tmp_path / f"{name}-world1.safetensors")
        assert two.keys() == one.keys()
        for k in one:
            _close(two[k], one[k], 1e-4, 1e-6, f"{name} {k}")


def _gan_train_worker(rank: int, world: int, out: str, overrides: list) -> None:
    from clm.core.config import load_config
    from clm.gan.train import GanConfig, train
    from clm.gan_adapters.domains import gan_domain

    cfg = load_config(GanConfig, None, overrides)
    run_dir = Path(out) / (f"run{world}" if rank == 0 else f"not-written-by-rank{rank}")
    if rank == 0:
        (run_dir / "checkpoints").mkdir(parents=True)
    summary = train(cfg, run_dir, gan_domain(cfg.data), quiet=True)
    assert summary["steps"] == cfg.steps and summary.get("world_size", 1) == world


def _gan_functions(run_dir: Path, overrides: list) -> dict[str, torch.Tensor]:
    """What a trained run's networks compute on fixed inputs: G with batch
    statistics (as it trains), the EMA sampler (as it samples), D's logits."""
    from clm.core.checkpoint import strip_prefix
    from clm.core.config import load_config
    from clm.gan.train import GanConfig, build_models
    from clm.gan_adapters.domains import gan_domain

    cfg = load_config(GanConfig, None, overrides)
    data = gan_domain(cfg.data).load(cfg)
    weights, _, _ = load_checkpoint(run_dir / "checkpoints" / "last")
    G, D = build_models(cfg, data)
    gen = torch.Generator().manual_seed(99)
    z = torch.randn(64, cfg.z_dim, generator=gen)
    c = data.train_cond[:64] if cfg.conditional else None
    out = {}
    with torch.no_grad():
        G.load_state_dict(strip_prefix(weights, "G."))
        out["G_train_mode"] = G.train()(z, c)
        G.load_state_dict(strip_prefix(weights, "G_ema."))
        out["G_ema"] = G.eval()(z, c)
        D.load_state_dict(strip_prefix(weights, "D."))
        out["D_logits"] = D.train()(data.train_x[:64], c)[0]
    out.update({k: v for k, v in weights.items() if k.startswith("D.")})
    return out


@pytest.mark.slow
def test_gan_training_on_two_ranks_matches_one_process_and_only_rank_0_writes(tmp_path):
    overrides = GAN_BASE + GAN_VARIANTS["mlp-ns"] + ["steps=6"]
    spawn(_gan_train_worker, str(tmp_path), overrides)
    _gan_train_worker(0, 1, str(tmp_path), overrides)
    two, one = _gan_functions(tmp_path / "run2", overrides), _gan_functions(tmp_path / "run1", overrides)
    for k in one:
        _close(two[k], one[k], 0, 1e-6 if k.startswith("D.") else 1e-5, k)
    # the logged figures are the global batch's (averaged over the ranks), as one process logs them
    rows = [[json.loads(line) for line in (tmp_path / f"run{w}" / "metrics.jsonl").read_text().splitlines()]
            for w in (1, 2)]
    assert len(rows[0]) == len(rows[1]) == 6
    for a, b in zip(*rows):
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    # only rank 0 wrote: one TensorBoard writer, rank 1's folder never made, nothing in the ranks' cwd
    assert len(list((tmp_path / "run2" / "tb").iterdir())) == 1
    assert not (tmp_path / "not-written-by-rank1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1", "run2"]
    meta = json.loads((tmp_path / "run2" / "checkpoints" / "last" / "meta.json").read_text())
    assert meta["step"] == 6


# -- the DQN learner (clm dqn train; the player of clm run) ------------------------------------------
DQN_BASE = dict(total_steps=600, learning_starts=200, train_freq=50, gradient_steps=8, batch_size=32,
                eval_interval=0, eval_episodes=2, log_interval=300, checkpoint_interval=0, hidden=(32, 32),
                target_update_interval=100)
DQN_VARIANTS = {
    "fast-uniform": {},  # the NumPy fast path: one flat gradient, one collective per update
    "autograd-per-dueling-double": dict(prioritized=True, dueling=True, double_dqn=True, n_step=3),
    "demonstrations": dict(demo_fraction=0.25, n_step=2),  # 8 of 32 rows per batch, 4 per rank
}


def _demonstrations():
    """Two CartPole episodes of fixed actions, as DQfD takes them (plain arrays)."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    rows = []
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        for t in range(500):
            action = t % 2
            nxt, r, term, trunc, _ = env.step(action)
            rows.append((obs, action, r, nxt, term, term or trunc))
            obs = nxt
            if term or trunc:
                break
    obs, actions, rewards, next_obs, terminated, ends = (np.array(x) for x in zip(*rows))
    return obs.astype(np.float32), actions, rewards, next_obs.astype(np.float32), terminated, ends


def _dqn_worker(rank: int, world: int, out: str, modes: tuple) -> None:
    from clm.agents.dqn import DQN, DQNConfig
    from clm.agents.training import learn

    for ddp_data in modes:
        for name, extra in DQN_VARIANTS.items():
            agent = DQN(DQNConfig(**DQN_BASE, **extra, ddp_data=ddp_data), data_parallel=world > 1)
            if agent.cfg.uses_demonstrations:
                agent.add_demonstrations(*_demonstrations())
            learn(agent)
            n = len(agent.replay)
            save_file({**{k: v.contiguous() for k, v in agent.q.state_dict().items()},
                       "replay_obs": torch.from_numpy(agent.replay.obs[:n].copy())},
                      f"{out}/{name}-{ddp_data}-world{world}-rank{rank}.safetensors")


@pytest.mark.slow
def test_dqn_learner_on_two_ranks(tmp_path):
    """ddp_data=replicated: the ranks act alike and split each global batch:
    the Q-network after 8 bursts of 8 updates is one process's.
    ddp_data=rank: each rank plays its own episodes (seeds offset by rank),
    and the averaged gradients keep every rank's Q-network the same."""
    spawn(_dqn_worker, str(tmp_path), ("replicated", "rank"))
    _dqn_worker(0, 1, str(tmp_path), ("replicated",))
    for name in DQN_VARIANTS:
        one = load_file(tmp_path / f"{name}-replicated-world1-rank0.safetensors")
        for rank in range(WORLD):
            two = load_file(tmp_path / f"{name}-replicated-world2-rank{rank}.safetensors")
            for k in one:
                _close(two[k], one[k], 0, 1e-5, f"{name} rank {rank} {k}")
        r0, r1 = (load_file(tmp_path / f"{name}-rank-world2-rank{r}.safetensors") for r in range(WORLD))
        assert not torch.equal(r0["replay_obs"], r1["replay_obs"]), "the ranks played the same episodes"
        for k in r0:
            if k != "replay_obs":
                assert torch.equal(r0[k], r1[k]), f"{name}: {k} differs between the ranks"


# -- the command line: torchrun itself, and misuse -------------------------------------------------
@pytest.mark.slow
def test_torchrun_gan_train_matches_one_process(tmp_path):
    """The command of the issue, ``torchrun --nproc_per_node 2 -m clm gan
    train``, against the same command in one process; then resumed."""
    settings = ["batch_size=16", "g_width=16", "d_width=8", "final_eval=false", "log_every=1"]
    argv = lambda out, steps: ["gan", "train", "--json", "--out", out, *settings, f"steps={steps}"]  # noqa: E731
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "clm"]
    two = subprocess.run(torchrun + argv("two", 3), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(argv(str(tmp_path / "one"), 3)) == 0
    printed = [json.loads(line) for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["world_size"] == 2  # rank 0 alone prints
    rows = {w: [json.loads(x) for x in (tmp_path / w / "metrics.jsonl").read_text().splitlines()] for w in ("one", "two")}
    assert len(rows["two"]) == 3
    for a, b in zip(rows["one"], rows["two"]):
        assert b["loss_d"] == pytest.approx(a["loss_d"], rel=1e-4) and b["loss_g"] == pytest.approx(a["loss_g"], rel=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert len(list((tmp_path / "two" / "tb").iterdir())) == 1
    # resumed under torchrun (each rank's stream from the checkpoint) it goes on as one process's 5 steps
    resumed = subprocess.run(torchrun + ["gan", "train", "--json", "--resume", "two", "steps=5"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert main(argv(str(tmp_path / "one5"), 5)) == 0
    rows = {w: [json.loads(x) for x in (tmp_path / w / "metrics.jsonl").read_text().splitlines()] for w in ("one5", "two")}
    assert [r["step"] for r in rows["two"]] == [1, 2, 3, 4, 5]
    for a, b in zip(rows["one5"], rows["two"]):
        assert b["loss_d"] == pytest.approx(a["loss_d"], rel=1e-4) and b["loss_g"] == pytest.approx(a["loss_g"], rel=1e-4)


@pytest.mark.parametrize("argv, words", [
    (["gan", "train", "batch_size=7"], "batch_size=7 does not divide over 2 processes"),
    (["gan", "train", "device=cuda"], "no CUDA GPU"),
    (["dqn", "train", "batch_size=33"], "batch_size=33 does not divide over 2 processes"),
    (["dqn", "train", "batch_size=64", "demo_fraction=0.2"], "13 demonstration rows"),
    (["run", "player.batch_size=33"], "batch_size=33 does not divide over 2 processes"),
])
def test_torchrun_misuse_is_a_clear_error_before_any_folder(argv, words, tmp_path, monkeypatch, capsys):
    for rank in (0, 1):  # every rank refuses the same config before joining the group
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        assert main(argv + ["--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
        assert err.startswith("[rank 1] error:" if rank else "error:")
        assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_torchrun_clm_run_player_learner(tmp_path):
    """``clm run`` under torchrun: the player's learner data-parallel. With
    player.ddp_data=replicated its Q-network after 2 rounds is one process's;
    with the default (each rank its own episodes) the run completes with one
    writer. G, D and the designer run alike on every rank."""
    from clm.core.checkpoint import strip_prefix

    tiny = ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4", "designer_steps=16",
            "samples_per_round=16", "eval_every=1", "eval_levels=10", "player.learning_starts=64",
            "player.conv_channels=[8]", "player.hidden=[32]", "designer.learning_starts=8", "gan.g_width=8",
            "gan.d_width=8", "player.pretrain_steps=200", "report=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "clm"]
    for name, extra in (("replicated", ["player.ddp_data=replicated"]), ("rank", ["rounds=1"])):
        two = subprocess.run(torchrun + ["run", "--out", name, "--json"] + tiny + extra, cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert two.returncode == 0, two.stderr[-3000:]
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["status"] == "ok" and summary["world_size"] == 2 and summary["player_solve_rate"] is not None
        assert len(list((tmp_path / name / "tb").iterdir())) == 1
    assert main(["run", "--out", str(tmp_path / "one"), "--json", *tiny, "player.ddp_data=replicated"]) == 0
    one, _, _ = load_checkpoint(tmp_path / "one" / "checkpoints" / "clm")
    two, _, _ = load_checkpoint(tmp_path / "replicated" / "checkpoints" / "clm")
    for prefix in ("player.q.", "gan.G.", "gan.D.", "designer.q."):
        a, b = strip_prefix(one, prefix), strip_prefix(two, prefix)
        for k in a:
            _close(b[k], a[k], 0, 1e-5, prefix + k)
    rows = {w: [json.loads(x) for x in (tmp_path / w / "metrics.jsonl").read_text().splitlines()]
            for w in ("one", "replicated")}
    losses = {w: [r["player_loss"] for r in rows[w] if "player_loss" in r] for w in rows}
    assert len(losses["one"]) == 2 and losses["replicated"] == pytest.approx(losses["one"], rel=1e-5)  # the global batch's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "rank", "replicated"]
