"""Where the GAN family meets the domain of its data: images (digits, MNIST)
and Sokoban levels.

gan/ trains G and D on tensors and knows no domain. What a domain adds to
``clm gan train | sample | eval`` (reading its data, drawing G's samples,
its own metrics, a loss term of its own) is one class here per domain,
shaped as :class:`clm.gan.data.GanDomain`; :func:`gan_domain` picks it from
the ``data`` key. The levels' code it calls (decoding, metrics, pictures,
the pattern loss) lives in :mod:`clm.domains.levels`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.core.errors import UserError
from clm.domains.images import image_grid, load_image_data, save_png
from clm.domains.levels import levels_to_onehot, write_levels
from clm.domains.levels.data import room_size_labels, training_split
from clm.domains.levels.decode import decode_generated, generated_wall_threshold
from clm.domains.levels.gan_metrics import evaluate_levels
from clm.domains.levels.level import WALL
from clm.domains.levels.render import levels_grid
from clm.gan import metrics
from clm.gan.data import GanData, GanDomain, _one_hot, from_arrays
from clm.gan.train import GanConfig, generate, train


def gan_domain(spec: str) -> GanDomain:
    """The domain of ``data=SPEC``: ``digits`` or ``mnist:PATH`` (images), ``levels:PATH`` (Sokoban levels)."""
    if spec.startswith("levels:"):
        if not spec.split(":", 1)[1]:
            raise UserError("--data levels:PATH needs a file or folder of Boxoban levels", exit_code=2)
        return LevelsGan()
    if spec == "digits" or spec.startswith("mnist:"):
        return ImagesGan()
    raise UserError(f"unknown --data '{spec}': use digits, mnist:PATH or levels:PATH", exit_code=2)


class ImagesGan:
    """Images in [-1, 1] with class labels (conditions: the class one-hot)."""

    sample_suffixes = (".png", ".npy")
    memorisation_in_pixels = True

    def load(self, cfg) -> GanData:
        s = load_image_data(cfg.data, cfg.test_fraction, cfg.split_seed)
        d = from_arrays(s.train_x, s.train_y, s.test_x, s.test_y, name=s.name)
        d.key, d.n_classes = f"{s.name}-split{cfg.split_seed}-test{cfg.test_fraction:g}", s.n_classes
        d.train_cond, d.test_cond = _one_hot(s.train_y, s.n_classes), _one_hot(s.test_y, s.n_classes)
        return d

    def picture(self, G, z, cond, cfg, data, device) -> np.ndarray:
        with torch.no_grad(), _eval_mode(G):
            x = G(z, cond).float().cpu()
        return image_grid(x, nrow=int(math.ceil(math.sqrt(len(x)))))

    def evaluate(self, G, D, data, cfg, ref, n, pool, device, generator) -> dict[str, Any]:
        x, _ = generate(G, n, pool, device, generator=generator)
        out = metrics.evaluate_samples(x, ref, class_balance=True)
        if cfg.fid_weights:
            try:
                out.update(metrics.inception_fid_kid(x.numpy(), data.test_x.numpy(), cfg.fid_weights,
                                                     cuda=device.type == "cuda"))
            except UserError as e:
                print(f"warning: {e}")
                out["fid_error"] = str(e)
        return out

    def write_samples(self, G, D, data, cfg, n, out: Path, seed, device) -> None:
        gen = torch.Generator().manual_seed(seed)
        pool = data.train_cond[torch.randperm(len(data.train_cond), generator=gen)] if G.cond_dim else None
        x, _ = generate(G, n, pool, device, generator=gen)
        if out.suffix.lower() == ".npy":
            np.save(out, x.numpy())
        else:
            save_png(image_grid(x), out)


class LevelsGan:
    """Sokoban levels as one-hot tile grids; conditions: the box count
    one-hot (1..``max_boxes``); G's per-cell probabilities are decoded into
    structurally valid levels (:mod:`clm.domains.levels.decode`)."""

    sample_suffixes = (".txt", ".png")
    memorisation_in_pixels = False  # memorised is measured in cells (Hamming), the levels' unit

    def load(self, cfg) -> GanData:

        train_levels, test_levels, source = training_split(cfg.data.split(":", 1)[1], cfg.levels_reference,
                                                           cfg.max_levels, cfg.test_fraction, cfg.split_seed)
        tx, vx = torch.from_numpy(levels_to_onehot(train_levels)), torch.from_numpy(levels_to_onehot(test_levels))
        ty, vy, n_classes = room_size_labels(tx.numpy(), vx.numpy())

        def cond(lvls: list) -> torch.Tensor:
            return _one_hot(torch.tensor([min(max(lv.n_boxes, 1), cfg.max_boxes) - 1 for lv in lvls]), cfg.max_boxes)

        key = f"levels-{Path(cfg.data.split(':', 1)[1]).expanduser().name}-{len(train_levels)}-ref{len(test_levels)}-split{cfg.split_seed}"
        return GanData("levels", key, tx, vx, torch.from_numpy(ty).long(), torch.from_numpy(vy).long(), n_classes,
                       cond(train_levels), cond(test_levels),
                       {"train_levels": train_levels, "test_levels": test_levels, "test_source": source},
                       categorical=True)

    def picture(self, G, z, cond, cfg, data, device) -> np.ndarray:

        with torch.no_grad(), _eval_mode(G):
            x = G.probs(z, cond).float().cpu()
        threshold = wall_threshold(G, data, cfg, device)
        return levels_grid(decode_generated(x.numpy(), cond, cfg.level_decode, seed=0, wall_threshold=threshold,
                                            live_boxes=cfg.live_boxes))

    def evaluate(self, G, D, data, cfg, ref, n, pool, device, generator) -> dict[str, Any]:

        x, _, decoded, threshold = sample_levels(G, D, data, cfg, n, pool, device, generator, seed=cfg.seed + 12345)
        out = metrics.evaluate_samples(levels_to_onehot(decoded), ref, class_balance=False, novelty=False)
        out.update(evaluate_levels(x.numpy(), decoded, data.extra["train_levels"], data.extra["test_levels"],
                                   threshold, cfg.solve_samples, cfg.solve_time_limit, cfg.solver_jobs))
        out["rejection"] = cfg.rejection
        return out

    def write_samples(self, G, D, data, cfg, n, out: Path, seed, device) -> None:
        gen = torch.Generator().manual_seed(seed)
        pool = data.train_cond[torch.randperm(len(data.train_cond), generator=gen)] if G.cond_dim else None
        _, _, levels, _ = sample_levels(G, D, data, cfg, n, pool, device, gen, seed=seed)
        if out.suffix.lower() == ".txt":
            write_levels(out, levels)
        else:
            save_png(levels_grid(levels), out)


class _eval_mode:
    """G in eval mode for a draw, then back to what it was."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.was = module, module.training

    def __enter__(self):
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was)


def sample_levels(G: torch.nn.Module, D: torch.nn.Module | None, data: GanData, cfg, n: int,
                  pool: torch.Tensor | None, device: torch.device, generator: torch.Generator, seed: int):
    """``n`` decoded levels from a tile generator: (probabilities, conditions,
    levels, wall threshold). With ``cfg.rejection`` = k > 1, each is the best
    of k candidates of the same condition by D's realism (:func:`best_of_k`)."""
    k = cfg.rejection
    if k > 1 and D is None:
        raise UserError("rejection > 1 needs the run's discriminator")
    if k > 1 and pool is not None:
        pool = pool[torch.arange(n * k) // k % len(pool)]  # each condition k times in a row: one group
    x, conds = generate(G, n * k, pool, device, generator=generator)
    threshold = wall_threshold(G, data, cfg, device)
    levels = decode_generated(x.numpy(), conds, cfg.level_decode, seed=seed, wall_threshold=threshold,
                              live_boxes=cfg.live_boxes)
    if cfg.refiner_player_moves:  # the player moved to where the cell refiner expects it, given the decoded level
        from clm.domains.levels.decode import move_player
        from clm.gan.refiner import pseudo_log_likelihood

        refiner = G.refinement.refiner
        levels = move_player(levels, lambda tiles: pseudo_log_likelihood(refiner, tiles), cfg.refiner_player_moves,
                             cfg.refiner_player_beta, rng=seed + 1)
    if k > 1:
        keep = best_of_k(levels, conds, D, k, device)
        x, levels = x[keep], [levels[i] for i in keep]
        conds = None if conds is None else conds[keep]
    return x, conds, levels, threshold


@torch.no_grad()
def best_of_k(candidates: list, conds: torch.Tensor | None, D: torch.nn.Module, k: int,
              device: torch.device) -> np.ndarray:
    """Discriminator rejection sampling, best of ``k``: ``candidates`` are
    decoded levels in groups of ``k`` consecutive ones (one condition per
    group); returns, per group, the index of the one D finds most realistic."""
    if len(candidates) % k:
        raise ValueError(f"{len(candidates)} candidates do not split into groups of {k}")
    logits = []
    for i in range(0, len(candidates), 1024):
        x = torch.from_numpy(levels_to_onehot(candidates[i:i + 1024])).float().to(device)
        c = None if conds is None else conds[i:i + 1024].to(device)
        logits.append(D(x, c)[0].float().cpu())
    groups = torch.cat(logits).view(-1, k)
    return (groups.argmax(1) + torch.arange(len(groups)) * k).numpy()


def wall_threshold(G: torch.nn.Module, data: GanData, cfg, device: torch.device) -> float | None:
    """The decoder's wall-score threshold for a tile generator:
    :func:`clm.domains.levels.decode.room_size_threshold` on 1,000 of G's
    samples (a fixed seed, so evaluation and ``clm gan sample`` agree)
    against the training corpus's share of open inner cells; None (the
    argmax rule) with ``cfg.room_calibration`` off."""
    if not cfg.room_calibration:
        return None

    gen = torch.Generator().manual_seed(cfg.seed + 777)
    pool = data.train_cond[torch.randperm(len(data.train_cond), generator=gen)] if G.cond_dim else None
    x, _ = generate(G, 1000, pool, device, generator=gen)
    open_fraction = 1.0 - float(data.train_x[:, WALL, 1:-1, 1:-1].mean())
    return generated_wall_threshold(x.numpy(), open_fraction, cfg.level_decode, seed=cfg.seed + 778)


def train_gan(cfg, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """:func:`clm.gan.train.train` on the domain ``cfg.data`` names (what ``clm gan train`` runs)."""
    return train(cfg, run_dir, gan_domain(cfg.data), resume=resume, quiet=quiet)


def load_gan_data(spec: str, test_fraction: float = 0.25, split_seed: int = 0, **levels_options) -> GanData:
    """The :class:`GanData` of ``digits``, ``mnist:PATH`` or ``levels:PATH``
    (``levels_options``: levels_reference, max_levels, max_boxes as in GanConfig)."""
    cfg = GanConfig(data=spec, test_fraction=test_fraction, split_seed=split_seed, **levels_options)
    return gan_domain(spec).load(cfg)
