"""GAN training, read top to bottom (CleanRL style).

The config (every hyperparameter, one line each), the set-up (data, G, D,
resume), the loop (D steps, then one G step, the divergence check, logging,
images, checkpoints) and the final evaluation that writes ``summary.json``.
The D and G updates themselves, with the EMA, the optimisers and every
stabiliser, are written once in :class:`clm.gan.steps.AdversarialPair`,
which the CLM loop (:mod:`clm.engine.loop`) drives too.

The loss is the seed's by default: D maximises
J_D = E_real[log D(x)] + E_G[log(1 - D(G(z)))], G maximises the
non-saturating J_G = E[log D(G(z))]; hinge and WGAN-GP are switches, as are
the stabilisers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from clm.core import distributed
from clm.core.checkpoint import load_checkpoint, save_checkpoint, strip_prefix
from clm.core.config import save_config, to_dict
from clm.core.errors import UserError
from clm.core.logging import MetricLogger, NullLogger
from clm.core.rundir import write_summary
from clm.core.runtime import (
    DeferredInterrupt,
    rng_state,
    seed_everything,
    set_rng_state,
    set_threads,
)
from clm.gan import metrics
from clm.gan.config import TileGanConfig
from clm.gan.data import GanData, GanDomain
from clm.gan.models import ImageDiscriminator, ImageGenerator, TileGenerator
from clm.gan.refiner import (
    Refinement,
    attach,
    load_refiner,
    save_refiner,
    train_refiner,
)
from clm.gan.steps import AdversarialPair


@dataclass
class GanConfig(TileGanConfig):
    """Hyperparameters of ``clm gan train`` (``key=value`` on the command line): the tile GAN's
    (:mod:`clm.gan.config`) and the command's data, schedule, evaluation and levels-decoding keys."""

    data: str = "digits"  # digits | mnist:PATH (IDX images, labels beside) | levels:PATH (Boxoban file/folder)
    seed: int = 0  # seed of weights, noise and batch order
    device: str = "auto"  # cpu | cuda | auto
    threads: int = 1  # torch CPU threads (0: min(2, cores)); 1 is fastest for these small nets and a shared CPU (measured 16x faster than 2 under load)
    steps: int = 3000  # generator updates
    live_boxes: bool = False  # levels: the decoder places goals first, then boxes only on cells from which a box can be pushed to a goal (no simple deadlocks)
    refiner_sweeps: int = 0  # tile grids: Gibbs sweeps of a learned cell refiner over G's sampled probabilities (gan/refiner.py): a model of each cell's tile given its neighbours, fitted to the training grids after G, each cell redrawn from p_G^refiner_g_power * p_refiner^refiner_power (0: off)
    refiner_g_power: float = 0.5  # refiner: exponent of G's probabilities in the product of experts
    refiner_power: float = 0.5  # refiner: exponent of the refiner's conditional in the product of experts
    refiner_kernel: int = 5  # refiner: the neighbourhood it reads (kernel x kernel, the cell itself masked out)
    refiner_steps: int = 1500  # refiner: Adam batches of maximum pseudo-likelihood on the training grids
    refiner_player_moves: int = 0  # levels: Metropolis-Hastings proposals that move each decoded level's player to an empty cell, accepted by the cell refiner's pseudo-likelihood (trains the refiner too; 0: off)
    refiner_player_beta: float = 0.5  # levels: inverse temperature of those moves (1 overshoots: the player beside a box in 77% of levels against Boxoban's 57%)
    rejection: int = 1  # levels: decode this many candidates per sample (same condition) and keep the one D scores most realistic (discriminator rejection sampling, best of k; 1: off); used by the final metrics and clm gan sample
    conditional: bool = True  # condition G and D on the class (digits) or box count (levels)
    level_decode: Literal["sample", "top"] = "sample"  # levels: boxes and goals drawn from G's probabilities (as D saw G's cells) or on its most probable cells
    room_calibration: bool = True  # levels: open the cells below the wall-score threshold that gives the corpus's mean room size (off: argmax)
    test_fraction: float = 0.25  # held-out share of the data (digits/MNIST; levels without a valid split)
    split_seed: int = 0  # seed of the train/test split (fixed: all runs compare on one split)
    levels_reference: str = ""  # levels: held-out reference file/folder (default: sibling valid/ split)
    max_levels: int = 0  # levels: keep at most this many training levels (0: all)
    max_boxes: int = 6  # levels: size of the box-count condition one-hot
    log_every: int = 100  # steps between metric rows
    image_every: int = 1000  # steps between TensorBoard sample grids
    checkpoint_every: int = 1000  # steps between checkpoints
    eval_samples: int = 0  # samples for the final metrics (0: as many as training examples, at most 2000)
    classifier_epochs: int = 30  # epochs of the FD-clf feature classifier
    fid_weights: str = ""  # local torch-fidelity InceptionV3 weights: adds FID/KID (nothing is downloaded)
    final_eval: bool = True  # compute the metrics into summary.json at the end (off: quick runs, tests)
    solve_samples: int = 200  # levels: decoded samples given to the solver (0: skip)
    solve_time_limit: float = 2.0  # levels: solver seconds per level
    solver_jobs: int = 1  # levels: workers for the solver checks: Ray's tasks when ray.init has run in this process, else this many worker processes (1: in this process; results are the same)

    def validate(self) -> None:
        super().validate()
        checks = [(self.steps >= 0, "steps must be >= 0"), (self.rejection >= 1, "rejection must be >= 1"),
                  (self.refiner_sweeps >= 0, "refiner_sweeps must be >= 0"),
                  (self.refiner_player_moves >= 0, "refiner_player_moves must be >= 0"),
                  (self.refiner_player_beta > 0, "refiner_player_beta must be > 0"), (self.refiner_steps >= 1, "refiner_steps must be >= 1"),
                  (self.refiner_kernel >= 3 and self.refiner_kernel % 2 == 1, "refiner_kernel must be odd and >= 3"),
                  (self.refiner_g_power >= 0 and self.refiner_power > 0, "refiner_g_power must be >= 0, refiner_power > 0"),
                  (self.solver_jobs >= 1, "solver_jobs must be >= 1"),
                  (min(self.log_every, self.image_every, self.checkpoint_every) >= 1, "*_every must be >= 1")]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad config: {msg}")


REFINER_FILE = "refiner.safetensors"  # a run's cell refiner (refiner_sweeps > 0), beside its checkpoints


def uses_refiner(cfg: GanConfig) -> bool:
    """Whether a run fits and uses the cell refiner (:mod:`clm.gan.refiner`)."""
    return cfg.refiner_sweeps > 0 or cfg.refiner_player_moves > 0


class GanDiverged(UserError):
    """Training stopped because the losses went NaN or D won outright."""


def check_data_parallel(cfg: GanConfig, world: int) -> None:
    """What data-parallel training over ``world`` processes needs of a config
    (clear errors, exit code 2): a global batch that splits into equal slices."""
    if world <= 1:
        return
    distributed.local_share(cfg.batch_size, "batch_size", world)


def build_models(cfg: GanConfig, data: GanData) -> tuple[torch.nn.Module, ImageDiscriminator]:
    """G and D for the data's kind and shape."""
    cond_dim = data.cond_dim if cfg.conditional else 0
    c, h, w = data.shape
    if data.categorical:
        G: torch.nn.Module = TileGenerator(c, h, w, cfg.z_dim, cfg.g_width, cond_dim, cfg.arch, cfg.gumbel_tau,
                                             cfg.tile_sample, cfg.res_blocks, cfg.refine_blocks)
    else:
        G = ImageGenerator(data.shape, cfg.z_dim, cfg.g_width, cond_dim, cfg.arch, res_blocks=cfg.res_blocks,
                           refine_blocks=cfg.refine_blocks)
    D = ImageDiscriminator(data.shape, cfg.d_width, cond_dim, cfg.arch, cfg.spectral_norm, cfg.minibatch_std,
                           max(1, cfg.res_blocks - 1))
    return G, D


@torch.no_grad()
def generate(G: torch.nn.Module, n: int, cond_pool: torch.Tensor | None, device: torch.device,
             generator: torch.Generator | None = None, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples from G in eval mode (images in [-1, 1]; for a tile generator,
    per-cell probabilities), with conditions cycled from ``cond_pool``."""
    was_training = G.training
    G.eval()
    outs, conds = [], []
    for i in range(0, n, batch):
        m = min(batch, n - i)
        z = torch.randn(m, G.z_dim, generator=generator).to(device)
        c = None
        if G.cond_dim:
            c = cond_pool[torch.arange(i, i + m) % len(cond_pool)].to(device)
            conds.append(c.cpu())
        x = (G.probs(z, c) if isinstance(G, TileGenerator) else G(z, c)).float().cpu()
        if (refinement := getattr(G, "refinement", None)) is not None:  # Gibbs sweeps of a cell refiner
            x = refinement(x, generator)
        outs.append(x)
    G.train(was_training)
    return torch.cat(outs), (torch.cat(conds) if conds else None)


def load_generator(run_dir: Path, cfg: GanConfig, data: GanData, device: torch.device,
                   with_discriminator: bool = False):
    """The sampling generator of a run: its EMA copy when it has one (and D,
    with ``with_discriminator``: then a pair ``(G, D)`` is returned)."""
    weights, _, _ = load_checkpoint(Path(run_dir) / "checkpoints" / "last", map_location=device, with_state=False)
    G, D = build_models(cfg, data)
    sd = strip_prefix(weights, "G_ema.") or strip_prefix(weights, "G.")
    try:
        G.load_state_dict(sd)
        if with_discriminator:
            D.load_state_dict(strip_prefix(weights, "D."))
    except RuntimeError as e:
        raise UserError(f"checkpoint in {run_dir} does not match its config.yaml ({str(e).splitlines()[0]})")
    if uses_refiner(cfg) and data.categorical:
        path = Path(run_dir) / REFINER_FILE
        if not path.exists():
            raise UserError(f"{run_dir} uses the cell refiner (refiner_sweeps={cfg.refiner_sweeps}, refiner_player_moves="
                            f"{cfg.refiner_player_moves}) but has no {REFINER_FILE}: train it again")
        attach(G, Refinement(load_refiner(path), cfg.refiner_sweeps, cfg.refiner_g_power, cfg.refiner_power))
    if with_discriminator:
        return G.to(device).eval(), D.to(device).eval()
    return G.to(device).eval()


def train(cfg: GanConfig, run_dir: Path, domain: GanDomain, resume: bool = False,
          quiet: bool = False, listener=None) -> dict[str, Any]:
    """Train G and D as ``cfg`` says on the data ``domain`` reads (see
    :func:`clm.gan_adapters.domains.gan_domain`), writing the run directory;
    returns the summary. ``listener(step, metrics)`` sees each logged row
    (see :class:`~clm.core.logging.MetricLogger`).

    Under torchrun (a process group, see :mod:`clm.core.distributed`) every
    rank calls this: each computes its slice of every global batch of
    ``cfg.batch_size`` and G's and D's gradients are averaged; only rank 0
    writes ``run_dir`` (config, logs, pictures, checkpoints, the final
    evaluation and summary) and the other ranks return their counters only."""
    run_dir = Path(run_dir) if run_dir is not None else None
    t_start = time.perf_counter()
    set_threads(cfg.threads)
    seed_everything(cfg.seed)  # the same seed on every rank: the same initial G and D
    device = distributed.device_for(cfg.device)  # a plain run: resolve_device; torchrun: cuda:LOCAL_RANK or cpu
    world, main = distributed.world_size(), distributed.is_main()
    check_data_parallel(cfg, world)
    if main:
        save_config(cfg, run_dir / "config.yaml")  # on resume too: overrides such as steps= are part of the run

    # ---- data, models, optimisers (the D and G updates, EMA and divergence check live in AdversarialPair)
    data = domain.load(cfg)
    train_x = data.train_x.to(device)
    train_c = data.train_cond.to(device)
    n_train = len(train_x)
    if n_train < cfg.batch_size:
        raise UserError(f"{cfg.data}: {n_train} training items of shape {tuple(data.shape)}, fewer than "
                        f"batch_size={cfg.batch_size}: lower batch_size or give more data", exit_code=2)
    if data.categorical and cfg.arch in ("dcgan", "resconv") and min(data.shape[1:]) < 3:
        raise UserError(f"{cfg.data}: grids of {data.shape[1]}x{data.shape[2]} cells are too small for arch="
                        f"{cfg.arch} (3x3 convs need at least 3x3); use arch=mlp", exit_code=2)
    if uses_refiner(cfg) and not data.categorical:
        raise UserError(f"refiner_sweeps and refiner_player_moves need tile grids (levels:PATH), not {data.kind}", exit_code=2)
    G, D = build_models(cfg, data)
    pair = AdversarialPair(G.to(device), D.to(device), cfg, amp=cfg.amp)
    cond = (lambda c: c) if cfg.conditional else (lambda c: None)
    # fixed noise for the sample grids, from its own generator so it never shifts the training stream
    fixed_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)).to(device)
    fixed_c = data.train_cond[torch.arange(64) % n_train].to(device) if cfg.conditional else None
    if cfg.conditional and not data.categorical:  # one row per class
        fixed_c = torch.nn.functional.one_hot(torch.arange(64) % data.n_classes, data.n_classes).float().to(device)
    step = 0
    ckpt_dir = run_dir / "checkpoints" / "last" if run_dir is not None else None
    state: dict[str, Any] = {}
    if resume:
        weights, state, _ = load_checkpoint(ckpt_dir, map_location=device)
        pair.load_weights(weights)
        pair.load_state_dict({"ema_updates": state["step"], **state})  # older checkpoints: one EMA update a step
        step = state["step"]
        set_rng_state(state["rng"])
    # The loop's draws (batch indices, conditions, noise). Data-parallel: drawn whole from one stream on
    # every rank and sliced, so N ranks see the rows one process sees; each rank's own seed (seed + rank)
    # then drives only the noise drawn inside the networks (Gumbel, DiffAugment).
    draws = distributed.BatchDraws.for_training(cfg.seed, device)
    if draws.distributed:
        pair.data_parallel(device)
        if resume:  # from a plain run's checkpoint the shared stream continues its default generator's
            draws.set_state(state.get("draws_rng"))
            distributed.set_rank_rng_state(state.get("rank_rng"), cfg.seed + step)
    elif resume and state.get("draws_rng") is not None:  # a data-parallel run's global stream, continued by one process
        distributed.default_generator(device).set_state(state["draws_rng"].cpu())
    batch = cfg.batch_size  # the global batch; each rank's draws keep batch / world rows of it
    gp_alpha_shape = [1] * (train_x.dim() - 1)

    def refresh_sampler() -> None:  # before G_ema is sampled or saved
        if pair.ema is not None:
            pair.ema.standing_stats(cfg.z_dim, train_c if cfg.conditional else None)

    def save(at_step: int) -> None:
        extra = {}
        if draws.distributed:  # a collective: every rank takes part, rank 0 writes
            extra = {"draws_rng": draws.state(), "rank_rng": distributed.rank_rng_states(), "world_size": world}
        if not main:
            return
        refresh_sampler()
        save_checkpoint(ckpt_dir, pair.weights(), {**pair.state_dict(), "step": at_step, "rng": rng_state(), **extra},
                        {"step": at_step, "data": cfg.data, "kind": data.kind, "config": to_dict(cfg)})

    logger = (MetricLogger(run_dir, total_steps=cfg.steps, quiet=quiet, initial_step=step, resume=resume,
                            listener=listener) if main else NullLogger())
    saved = False
    stop = DeferredInterrupt()  # Ctrl-C finishes the step and saves it, so that resume is exact
    try:
        stop.__enter__()
        # ---- the loop
        while step < cfg.steps:
            # (1) D: a real batch with its conditions against G's samples for drawn conditions, d_steps times
            for _ in range(cfg.d_steps):
                idx = draws.randint(n_train, batch)
                fidx = draws.randint(n_train, batch)  # conditions of the fakes
                real, c_real = train_x[idx], train_c[idx]
                z_fake = draws.randn(batch, cfg.z_dim)
                gp_alpha = (draws.rand(batch, *gp_alpha_shape)
                            if draws.distributed and cfg.loss == "wgan-gp" else None)
                d = pair.d_step(real, cond(c_real), cond(train_c[fidx]), z=z_fake, gp_alpha=gp_alpha)

            # (2) G: fool D (plus feature matching against the last real batch when on), then the EMA update
            z = draws.randn(batch, cfg.z_dim)  # noise before conditions, as ever
            c_fake = train_c[draws.randint(n_train, batch)]
            g = pair.g_step(len(z), device, cond(c_fake), real_for_features=real,
                            cond_for_features=cond(c_real), z=z)
            step += 1
            stop_now = stop.requested
            if draws.distributed:  # the global batch's figures on every rank, and one decision to stop
                figures = distributed.mean_across_ranks({**d, **g, "stop": float(stop.requested)})
                stop_now = figures.pop("stop") > 0
                d, g = {k: figures[k] for k in d}, {k: figures[k] for k in g}

            # (3) divergence: NaN/inf now, or D's loss near 0 for divergence_patience steps
            if (why := pair.diverged({**d, **g}, checkpoint=ckpt_dir)) is not None:
                raise GanDiverged(f"training diverged at step {step}: {why}")

            # (4) logging, images, checkpoints (rank 0 writes; every rank takes part in a save)
            if step % cfg.log_every == 0 or step == cfg.steps:
                logger.log(step, {"loss_d": d["d_loss"], "loss_g": g["g_loss"], "d_real": d["d_real"],
                                  "d_fake": g["d_fake"]})
                logger.progress(step, loss_d=d["d_loss"], loss_g=g["g_loss"])
            if main and (step % cfg.image_every == 0 or step == cfg.steps):
                refresh_sampler()
                logger.image("samples", domain.picture(pair.sampler, fixed_z, fixed_c, cfg, data, device), step)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop_now:
                save(step)
                saved = True
            if stop_now:
                raise KeyboardInterrupt
    finally:
        stop.__exit__()
        logger.close()
    if cfg.steps == 0 or not (resume or saved):
        save(step)
    if draws.distributed:
        pair.end_data_parallel()  # sampling and evaluation below run on rank 0 alone
    if not main:
        return {"steps": step, "train_seconds": time.perf_counter() - t_start, "rank": distributed.rank(),
                "world_size": world, "device": str(device)}
    # ---- the cell refiner (a post-step: fitted to the training grids, G untouched); on resume, the saved one
    refiner_seconds, refiner_ce = 0.0, None
    if uses_refiner(cfg):
        t_refiner = time.perf_counter()
        path = run_dir / REFINER_FILE
        if resume and path.exists():
            refiner = load_refiner(path)
        else:
            refiner, refiner_ce = train_refiner(data.train_x, cfg.refiner_steps, kernel=cfg.refiner_kernel, seed=cfg.seed)
            save_refiner(refiner, path)
        attach(pair.sampler, Refinement(refiner, cfg.refiner_sweeps, cfg.refiner_g_power, cfg.refiner_power))
        refiner_seconds = time.perf_counter() - t_refiner
    train_seconds = time.perf_counter() - t_start

    # ---- final evaluation
    refresh_sampler()
    summary = evaluate_generator(pair.sampler, data, cfg, run_dir, device, domain, D=pair.D) if cfg.final_eval else {}
    if uses_refiner(cfg):
        summary.update({"refiner_seconds": refiner_seconds, "refiner_ce": refiner_ce})  # ce: nats per cell, None when loaded
    summary.update({"steps": step, "train_seconds": train_seconds,
                    "wall_seconds": time.perf_counter() - t_start, "device": str(device)})
    if world > 1:
        summary["world_size"] = world
    write_summary(run_dir, summary)
    return summary


def evaluate_generator(G: torch.nn.Module, data: GanData, cfg: GanConfig, run_dir: Path | None,
                       device: torch.device, domain: GanDomain, D: torch.nn.Module | None = None) -> dict[str, Any]:
    """Sample ``eval_samples`` from G (fixed seed) and compute every metric:
    the generic ones (FD-clf, precision/recall/density/coverage) and the
    domain's own, both in ``domain.evaluate``."""
    cache = Path(run_dir) / "classifier" if run_dir is not None else None
    n = cfg.eval_samples or min(len(data.train_x), 2000)
    ref = metrics.build_reference(data.train_x, data.train_y, data.test_x, data.test_y, data.n_classes, cache,
                                  data.key, cfg.classifier_epochs, seed=cfg.split_seed, n_eval=n,
                                  compute_threshold=domain.memorisation_in_pixels)
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    # conditions: a shuffled copy of the training conditions, so classes keep their real shares
    pool = data.train_cond[torch.randperm(len(data.train_cond), generator=gen)] if G.cond_dim else None
    out: dict[str, Any] = domain.evaluate(G, D, data, cfg, ref, n, pool, device, gen)
    out["fd_clf_implementation"] = (f"clm FeatureClassifier ({ref.classifier.feature_dim}-d penultimate features, "
                                    f"trained on {data.key} train split)")
    out["eval_samples"] = n
    return out
