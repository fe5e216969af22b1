"""Searching G's latent space for creative levels: random sampling, CMA-ES
(the MarioGAN method, with the ``cma`` package) and the designer DQN. All
three spend a budget of G evaluations through the same ``LevelJudge``, so
their yields compare at equal cost."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from clm.agents.dqn import DQN, q_network_args
from clm.agents.networks import QNetwork
from clm.core.checkpoint import load_checkpoint, strip_prefix
from clm.core.config import load_config, read_yaml
from clm.core.errors import UserError
from clm.core.rundir import require_run_dir
from clm.domains.levels import levels_to_onehot, levels_to_tiles, read_levels
from clm.domains.levels.sim import N_ACTIONS
from clm.engine.archive import ScoredArchive
from clm.gan.models import ImageDiscriminator, TileGenerator
from clm.levels_clm.config import CLMConfig
from clm.levels_clm.corpus import load_corpus
from clm.levels_clm.couplings import LevelJudge
from clm.levels_clm.designer import LatentDesignerEnv


def build_gan(cfg: CLMConfig, shape: tuple[int, int, int], device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The CLM's tile G and D for (C, H, W) levels: used by the loop and to reload a run."""
    g = cfg.gan
    G = TileGenerator(*shape, g.z_dim, g.g_width, 0, g.arch, g.gumbel_tau, g.tile_sample, g.res_blocks,
                      g.refine_blocks).to(device)
    D = ImageDiscriminator(shape, g.d_width, 0, g.arch, g.spectral_norm, g.minibatch_std,
                           max(1, g.res_blocks - 1)).to(device)
    return G, D


@dataclass
class LoadedRun:
    cfg: CLMConfig
    G: torch.nn.Module
    D: torch.nn.Module
    judge: LevelJudge
    archive_levels: list
    designer: DQN | None
    player: QNetwork | None = None  #: the player's online Q-network (eval mode), None when the checkpoint has none
    corpus: list = field(default_factory=list)  #: the run's training levels
    heldout: list = field(default_factory=list)  #: the run's held-out real levels (its solve rate's)


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """G (EMA), D, the judge and the designer of a finished ``clm run``."""
    run_dir = require_run_dir(run_dir, "run")
    try:
        cfg = load_config(CLMConfig, base=read_yaml(run_dir / "config.yaml"))
    except UserError as e:
        raise UserError(f"{run_dir} is not a CLM run directory, or comes from an incompatible clm version: {e}",
                        exit_code=2)
    weights, _, meta = load_checkpoint(run_dir / "checkpoints" / "clm", with_state=False)
    if meta.get("kind") != "clm":
        raise UserError(f"{run_dir} is not a CLM run (its checkpoint is a '{meta.get('kind')}')", exit_code=2)
    corpus, heldout = load_corpus(cfg)
    shape = levels_to_onehot(corpus[:1]).shape[1:]
    G, D = build_gan(cfg, shape, device)
    try:
        G.load_state_dict(strip_prefix(weights, "gan.G_ema.") or strip_prefix(weights, "gan.G."))
        D.load_state_dict(strip_prefix(weights, "gan.D."))
    except RuntimeError as e:
        raise UserError(f"the checkpoint in {run_dir} does not match its config.yaml "
                        f"(incompatible version?): {str(e).splitlines()[0]}", exit_code=2)
    G.eval(), D.eval()
    archive_path = run_dir / "levels" / "archive.txt"
    archive_levels = list(read_levels(archive_path)) if archive_path.exists() else []
    judge = LevelJudge(levels_to_tiles(corpus), cfg.min_novelty, cfg.target_pushes, cfg.solve_time_limit,
                       solver_jobs=cfg.solver_jobs)
    judge.archive_tiles = levels_to_tiles(archive_levels) if archive_levels else None
    judge.n_boxes = judge.usual_box_count(corpus)
    judge.refresh_bar(D, corpus[:256])
    designer = None
    if any(k.startswith("designer.") for k in weights):
        env = LatentDesignerEnv(G, D, judge, ScoredArchive(0), num_envs=cfg.designer.num_envs,
                                horizon=cfg.designer_horizon, step_size=cfg.designer_step_size, seed=cfg.seed)
        designer = DQN(replace(cfg.designer, device=device), envs=env)
        designer.load_training_state(strip_prefix(weights, "designer."), None, {"kind": "dqn"}, where=str(run_dir / "checkpoints" / "clm"))
    player = None
    if any(k.startswith("player.q.") for k in weights):
        # the player's online network alone: no env, replay or optimiser is needed to use it
        player = QNetwork(**q_network_args(cfg.player, tuple(shape), N_ACTIONS)).to(device)
        try:
            player.load_state_dict(strip_prefix(weights, "player.q."))
        except RuntimeError as e:
            raise UserError(f"the player in {run_dir} does not match its config.yaml "
                            f"(incompatible version?): {str(e).splitlines()[0]}", exit_code=2)
        player.eval()
    return LoadedRun(cfg, G, D, judge, archive_levels, designer, player, corpus, heldout)
