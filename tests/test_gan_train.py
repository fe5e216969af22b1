"""GAN training on the digits: it learns, it resumes exactly, it stops on
divergence, and bad data is named."""


import numpy as np
import pytest
import torch

from clm.core.config import load_config
from clm.core.errors import UserError
from clm.gan.data import from_arrays
from clm.gan_adapters.domains import gan_domain, load_gan_data, train_gan
from clm.gan.train import GanConfig, GanDiverged, build_models, evaluate_generator, load_generator

QUICK = ["threads=1", "batch_size=64", "g_width=64", "log_every=50", "image_every=200", "checkpoint_every=50",
         "classifier_epochs=6", "eval_samples=600"]


def _cfg(*extra):
    return load_config(GanConfig, None, [*QUICK, *extra])


@pytest.mark.slow
def test_short_training_brings_fd_clf_well_below_the_untrained_generator(tmp_path):
    run = tmp_path / "run"
    summary = train_gan(_cfg("steps=400"), run, quiet=True)
    cfg = _cfg()
    data = load_gan_data("digits")
    torch.manual_seed(0)
    untrained, _ = build_models(cfg, data)
    before = evaluate_generator(untrained, data, cfg, run, torch.device("cpu"), gan_domain(cfg.data))  # same cached classifier
    assert summary["fd_clf"] < 0.25 * before["fd_clf"], (summary["fd_clf"], before["fd_clf"])
    assert summary["coverage"] > before["coverage"]
    for key in ("fd_clf", "fd_clf_floor", "fd_clf_ratio", "precision", "recall", "density", "coverage",
                "novelty_mean", "memorised_fraction", "wall_seconds"):
        assert np.isfinite(summary[key]), key
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    assert (run / "summary.json").is_file() and any((run / "tb").iterdir())
    assert (run / "classifier").is_dir()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    full = train_gan(_cfg("steps=60", "final_eval=false"), tmp_path / "full", quiet=True)
    half = tmp_path / "half"
    train_gan(_cfg("steps=30", "final_eval=false"), half, quiet=True)
    train_gan(_cfg("steps=60", "final_eval=false"), half, resume=True, quiet=True)
    assert full["steps"] == 60
    from clm.core.checkpoint import load_checkpoint

    wa, _, _ = load_checkpoint(tmp_path / "full" / "checkpoints" / "last", with_state=False)
    wb, _, _ = load_checkpoint(half / "checkpoints" / "last", with_state=False)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("extra", [
    ["loss=hinge", "spectral_norm=true"],
    ["loss=wgan-gp", "d_steps=2", "beta1=0.0", "minibatch_std=false"],
    ["conditional=false", "feature_matching=1.0", "label_smoothing=0.1", "diffaug=color,translation,cutout"],
    ["arch=dcgan", "g_width=8", "d_width=8", "ema=false"],
])
@pytest.mark.slow
def test_every_switch_trains_and_samples(tmp_path, extra):
    cfg = _cfg("steps=20", "final_eval=false", *extra)
    train_gan(cfg, tmp_path, quiet=True)
    data = load_gan_data("digits")
    G = load_generator(tmp_path, cfg, data, torch.device("cpu"))
    z = torch.randn(5, cfg.z_dim)
    c = data.train_cond[:5] if cfg.conditional else None
    x = G(z, c)
    assert x.shape == (5, 1, 8, 8) and torch.isfinite(x).all() and x.abs().max() <= 1


def test_d_collapse_stops_training_with_a_clear_message(tmp_path):
    # every D loss counts as "collapsed" -> stop after 5 steps, no summary written
    cfg = _cfg("steps=100", "divergence_loss=100.0", "divergence_patience=5")
    with pytest.raises(GanDiverged, match="diverged at step 5: D's loss stayed below") as e:
        train_gan(cfg, tmp_path, quiet=True)
    assert f"last good checkpoint is in {tmp_path / 'checkpoints' / 'last'}" in str(e.value)
    assert not (tmp_path / "summary.json").exists()


def test_d_collapse_counts_g_updates_not_d_updates(tmp_path):
    # d_steps=3: the patience is in G updates (steps), as the message says
    cfg = _cfg("steps=100", "d_steps=3", "divergence_loss=100.0", "divergence_patience=4")
    with pytest.raises(GanDiverged, match="diverged at step 4: D's loss stayed below 100 for 4 steps"):
        train_gan(cfg, tmp_path, quiet=True)


@pytest.mark.slow
def test_resume_from_a_checkpoint_without_ema_update_count(tmp_path):
    # checkpoints written before the steps moved into AdversarialPair lack "ema_updates": one EMA update a step
    from clm.core.checkpoint import load_checkpoint, save_checkpoint

    full = tmp_path / "full"
    train_gan(_cfg("steps=20", "final_eval=false"), full, quiet=True)
    half = tmp_path / "half"
    train_gan(_cfg("steps=10", "final_eval=false"), half, quiet=True)
    w, state, meta = load_checkpoint(half / "checkpoints" / "last")
    del state["ema_updates"]
    save_checkpoint(half / "checkpoints" / "last", w, state, meta)
    train_gan(_cfg("steps=20", "final_eval=false"), half, resume=True, quiet=True)
    wa, sa, _ = load_checkpoint(full / "checkpoints" / "last")
    wb, sb, _ = load_checkpoint(half / "checkpoints" / "last")
    assert sa["ema_updates"] == sb["ema_updates"] == 20
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_nan_losses_stop_training(tmp_path, monkeypatch):
    from clm.gan import losses

    monkeypatch.setattr(losses, "g_loss", lambda kind, logits: logits.mean() * float("nan"))
    with pytest.raises(GanDiverged, match="not finite"):
        train_gan(_cfg("steps=10"), tmp_path, quiet=True)
    assert not (tmp_path / "summary.json").exists()


def test_bad_data_is_named():
    x, y = np.zeros((10, 1, 8, 8), np.float32), np.zeros(10, np.int64)
    with pytest.raises(UserError, match=r"shape \(N, C, H, W\), got \(10, 8, 8\)"):
        from_arrays(x[:, 0], y, x, y)
    with pytest.raises(UserError, match="empty"):
        from_arrays(x[:0], y[:0], x, y)
    bad = x.copy()
    bad[3, 0, 1, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        from_arrays(bad, y, x, y, name="mine")
    with pytest.raises(UserError, match="unknown --data 'cifar'"):
        load_gan_data("cifar")
    with pytest.raises(UserError, match="does not exist"):
        load_gan_data("mnist:/nonexistent/train-images-idx3-ubyte")
    with pytest.raises(UserError, match="test_fraction"):
        load_gan_data("digits", test_fraction=1.5)


def test_mnist_idx_reader(tmp_path):
    import struct

    n = 30
    imgs = np.random.default_rng(0).integers(0, 256, size=(n, 6, 6), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 3
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 6, 6) + imgs.tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels.tobytes())
    d = load_gan_data(f"mnist:{tmp_path / 'train-images-idx3-ubyte'}")
    assert d.shape == (1, 6, 6) and d.n_classes == 3 and len(d.train_x) + len(d.test_x) == n
    assert d.train_x.min() >= -1 and d.train_x.max() <= 1
    (tmp_path / "trunc-images-idx3-ubyte").write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 6, 6) + imgs.tobytes()[:50])
    with pytest.raises(UserError, match="truncated"):
        load_gan_data(f"mnist:{tmp_path / 'trunc-images-idx3-ubyte'}")


def test_fid_with_a_wrong_weights_path_still_computes_the_rest(tmp_path, capsys):
    cfg = _cfg("steps=0", "fid_weights=/nonexistent/weights.pth", "classifier_epochs=1", "eval_samples=100")
    summary = train_gan(cfg, tmp_path, quiet=True)
    assert "does not exist" in summary["fid_error"]
    assert np.isfinite(summary["fd_clf"]) and np.isfinite(summary["coverage"])
    assert "warning:" in capsys.readouterr().out


def test_standing_stats_give_the_ema_generator_its_own_batchnorm_statistics():
    from clm.gan.models import EMA, ImageGenerator

    torch.manual_seed(0)
    G = ImageGenerator((1, 8, 8), z_dim=4, width=8, cond_dim=3, arch="mlp")
    ema = EMA(G, decay=0.5)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))  # the live G moves on; its BN buffers stay at their defaults
    ema.update(G)
    pool = torch.eye(3)
    ema.standing_stats(4, pool, batches=40, batch_size=500)
    # the first BatchNorm's input for the same draws, computed directly
    gen = torch.Generator().manual_seed(0)
    xs = []
    for _ in range(40):
        z = torch.randn(500, 4, generator=gen)
        c = pool[torch.randint(3, (500,), generator=gen)]
        xs.append(ema.model.fc[0](torch.cat([z, c], 1)).detach())
    x = torch.cat(xs)
    bn = ema.model.fc[1]
    torch.testing.assert_close(bn.running_mean, x.mean(0), rtol=1e-4, atol=1e-4)
    assert not ema.model.training and bn.momentum == 0.1


def test_amp_autocasts_the_gan_in_bfloat16_on_the_cpu():
    """amp=true: D's and G's forward passes run in bfloat16 on the CPU (not only on CUDA), and one
    update lands close to float32's (bf16 keeps 8 mantissa bits: a relative error of about 1%)."""
    import copy
    import math

    from clm.gan.steps import AdversarialPair

    cfg = GanConfig(batch_size=32, g_width=16, d_width=16, conditional=False, ema=False)
    data = gan_domain("digits").load(cfg)
    torch.manual_seed(0)
    G, D = build_models(cfg, data)
    seen = []
    D.register_forward_hook(lambda m, i, o: seen.append((o[0] if isinstance(o, tuple) else o).dtype))
    pairs = {amp: AdversarialPair(copy.deepcopy(G), copy.deepcopy(D), cfg, amp=amp) for amp in (False, True)}
    real = data.train_x[:32]
    for amp, pair in pairs.items():
        torch.manual_seed(1)
        d = pair.d_step(real)
        assert math.isfinite(d["d_loss"])
    assert torch.bfloat16 in seen and torch.float32 in seen
    for (n, p32), p16 in zip(pairs[False].D.named_parameters(), pairs[True].D.parameters()):
        step32 = p32.detach() - dict(D.named_parameters())[n].detach()
        step16 = p16.detach() - dict(D.named_parameters())[n].detach()
        assert p16.dtype == torch.float32  # the weights and Adam stay float32
        if step32.abs().max() > 0:  # Adam's first step is lr * sign(g) almost everywhere: the signs agree
            assert (torch.sign(step32) == torch.sign(step16)).float().mean() > 0.9, n
