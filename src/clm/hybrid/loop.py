"""The Creative Learning Model: the seed's loop, steps 1 to 6.

1. Initialise the player's and the designer's Q-networks (with their target
   networks), G and D; the player pre-trains on the solver's solutions of
   the corpus (DQfD).
2. The player acts in Sokoban and collects experience; G generates levels
   according to the player's current policy (its Q-network steers G's loss
   toward a target difficulty), and the designer DQN searches G's latent
   space for creative levels.
3. D trains on real levels (the corpus plus the creative archive) against G's.
4. The player improves its policy from its experience (DQN updates).
5. G updates from D's feedback plus the player's difficulty term; the
   solver-verified generated levels join the player's pool, with their
   solutions as demonstrations, so the player trains again on newly
   generated data.
6. Repeat for ``rounds`` rounds; a scheduler sets each network's share.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.dqn import DQN
from clm.core.checkpoint import load_checkpoint, save_checkpoint, strip_prefix
from clm.core.config import to_dict
from clm.core.errors import UserError
from clm.core.logging import MetricLogger
from clm.core.rundir import atomic_write_text, write_summary
from clm.core.runtime import (DeferredInterrupt, resolve_device, rng_state, seed_everything, set_rng_state,
                              set_threads)
from clm.domains.levels import levels_to_onehot, levels_to_tiles, write_levels
from clm.domains.levels.env import SokobanVecEnv
from clm.domains.levels.generator import LevelSampler
from clm.domains.levels.metrics import tile_pattern_kl
from clm.gan.steps import AdversarialPair, amp_on
from clm.hybrid.config import CLMConfig
from clm.hybrid.corpus import load_corpus, player_pool
from clm.hybrid.couplings import (CreativeArchive, DemonstrationFeed, LevelJudge, PartTimer, Scheduler,
                                  difficulty_steering_loss, levels_from_state, levels_state, player_solve_rate,
                                  player_solves, start_state_values)
from clm.hybrid.designer import LatentDesignerEnv, decode_latents
from clm.hybrid.qd import QDGrid
from clm.hybrid.search import build_gan


class CLMStopped(UserError):
    """The run stopped early (a diverging GAN, a stuck player); the report says why."""


def run_clm(cfg: CLMConfig, run_dir: Path, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    run_dir = Path(run_dir)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    timer = PartTimer()
    t_start = time.perf_counter()

    # -- step 1: data, G and D, the player and the designer ------------------------------------
    corpus, heldout = load_corpus(cfg)
    real_x = torch.from_numpy(levels_to_onehot(corpus)).float().to(device)
    gcfg = cfg.gan
    G, D = build_gan(cfg, tuple(real_x.shape[1:]), device)
    gan = AdversarialPair(G, D, gcfg, amp=amp_on(gcfg, device, quiet))
    judge = LevelJudge(levels_to_tiles(corpus), cfg.min_novelty, cfg.target_pushes, cfg.solve_time_limit)
    judge.n_boxes = judge.usual_box_count(corpus)
    archive = CreativeArchive(cfg.archive_size)
    grid = QDGrid(cfg.qd_descriptor, min_novelty=cfg.min_novelty)  # every judged level, G's and the designer's
    generated: list = []  # solver-verified raw G samples offered to the player
    pool = player_pool(corpus, [], 0.0)
    player_env = SokobanVecEnv(pool, num_envs=cfg.player.num_envs, seed=cfg.seed)
    pcfg = replace(cfg.player, total_steps=cfg.rounds * cfg.player_steps, seed=cfg.seed, device=str(device))
    if not cfg.player_demos:
        pcfg = replace(pcfg, demo_fraction=0.0, pretrain_steps=0)
    player = DQN(pcfg, envs=player_env)
    dcfg = replace(cfg.designer, total_steps=max(1, cfg.rounds * cfg.designer_steps), seed=cfg.seed + 1,
                 device=str(device))
    designer_env = LatentDesignerEnv(gan.sampler, D, judge, archive if cfg.archive_feedback else None,
                                     num_envs=dcfg.num_envs, horizon=cfg.designer_horizon,
                                     step_size=cfg.designer_step_size, seed=cfg.seed + 2)
    designer_env.on_judged = grid.offer
    designer = DQN(dcfg, envs=designer_env) if cfg.designer_search else None
    classic = LevelSampler(cfg.level_size, cfg.n_boxes, cfg.min_pushes)
    classic_rng = np.random.default_rng(cfg.seed + 7_919)
    scheduler = Scheduler(cfg.schedule, cfg.gan_steps, cfg.player_steps, cfg.designer_steps)
    demos = DemonstrationFeed(cfg.demo_symmetries, cfg.solve_time_limit) if pcfg.uses_demonstrations else None
    # player_solve_rate stays None until the held-out levels are first played: a run stopped
    # before that says "not evaluated", not 0.
    state = {"round": 0, "evaluations_at_round": [], "player_solve_rate": None, "train_solve_rate": 0.0}
    ckpt = run_dir / "checkpoints"
    exact_resume = None  # None: a fresh run; after a resume, whether every state read back exactly
    if resume:
        state, exact_resume = _load(ckpt, gan, player, designer, archive, scheduler, timer, rng, judge)
        generated = state.pop("generated")
        grid.load_state_dict(state.pop("qd_grid"))
        classic_rng.bit_generator.state = state.pop("classic_rng")
        if demos is not None:
            demos.seen, demos.transitions = set(state.pop("demo_keys")), state.pop("demo_transitions")
    elif demos is not None:
        with timer.part("player"):
            demos.feed(player, corpus)
            if pcfg.pretrain_steps:
                player.pretrain()
        player.envs.set_source(player_pool(corpus, _feedback(cfg, generated, archive), cfg.generated_fraction))
    logger = MetricLogger(run_dir, total_steps=cfg.rounds, quiet=quiet, initial_step=state["round"], unit="round",
                          wandb=cfg.wandb, config=to_dict(cfg), resume=resume)
    if demos is not None and not resume and pcfg.pretrain_steps:  # where the pre-trained player starts
        with timer.part("evaluation"):
            state["player_solve_rate"] = player_solve_rate(player.greedy_actions, heldout[: cfg.eval_levels])
        logger.log(0, {"player_solve_rate": state["player_solve_rate"], "player_demo_transitions": demos.transitions})
    status, message = "ok", ""
    stop = DeferredInterrupt()  # Ctrl-C ends the round first, so that its checkpoint is whole
    try:
        stop.__enter__()
        for rnd in range(state["round"], cfg.rounds):
            plan = scheduler.plan()
            row: dict[str, float] = {}
            # -- steps 2 and 4: the player plays its pool and learns from its experience
            with timer.part("player"):
                episodes_before, solved_before = player.episodes, player.successes
                for _ in range(max(1, plan["player"] // pcfg.num_envs)):
                    player.collect_step()
                played = player.episodes - episodes_before
                state["train_solve_rate"] = (player.successes - solved_before) / max(played, 1)
                row["player_train_solve_rate"] = state["train_solve_rate"]
                if (loss := player.pop_mean_loss()) is not None:
                    row["player_loss"] = loss
            # -- step 2: G generates; the solver verifies; the archive keeps the creative ones
            with timer.part("generation"):
                judge.archive_tiles = archive.tiles() if cfg.archive_feedback else None
                judge.refresh_bar(D, [corpus[i] for i in rng.choice(len(corpus), 128)])
                z = rng.standard_normal((cfg.samples_per_round, gcfg.z_dim)).astype(np.float32)
                samples = decode_latents(gan.sampler, z, judge.n_boxes)
                j = judge.judge(D, samples)
                archive.add(samples, j, "generator", rnd)
                grid.offer(samples, j)
                keep = j.playable & (j.novelty >= cfg.min_novelty) if cfg.generated_filter == "novel" else j.playable
                new_levels = [s for s, ok in zip(samples, keep) if ok]
                if cfg.pool_source == "classic":  # the oracle: as many levels from the generator that made the corpus
                    new_levels = classic(classic_rng, len(new_levels)) if new_levels else []
                if cfg.generated_filter == "unsolved" and new_levels:  # only the player's frontier
                    new_levels = [lv for lv, ok in zip(new_levels, player_solves(player.greedy_actions, new_levels))
                                  if not ok]
                generated = (generated + new_levels)[-2000:]
                state["generated_playable_fraction"] = float(j.playable.mean())
                row.update(generated_playable_fraction=state["generated_playable_fraction"],
                           generated_novelty_mean=float(j.novelty.mean()),
                           generated_realism_mean=float(j.realism.mean()))
            # -- steps 3 and 5: D on real (+ archive) against G; G on D's feedback + the player's steer
            with timer.part("gan"):
                target_value, value_scale = _target_value(player, real_x, cfg.steer_quantile)
                steer = None
                if cfg.player_steers_generator:
                    steer = lambda fake: cfg.steer_weight * difficulty_steering_loss(player.q, fake, target_value, value_scale)  # noqa: E731
                fed = archive.levels if cfg.feedback_levels == "archive" else grid.elites()
                feedback_x = (torch.from_numpy(levels_to_onehot(fed)).float().to(device)
                              if cfg.archive_feedback and len(fed) else None)
                player.q.requires_grad_(False)  # the steer trains G only
                for _ in range(plan["gan"]):
                    for _ in range(gcfg.d_steps):
                        real = _real_batch(real_x, feedback_x, cfg.archive_real_fraction, gcfg.batch_size)
                        gd = gan.d_step(real)
                    gg = gan.g_step(gcfg.batch_size, device, extra_loss=steer,
                                    real_for_features=real if gcfg.feature_matching > 0 else None)
                    if (why := gan.diverged({**gd, **gg})) is not None:
                        raise CLMStopped(f"the GAN diverged in round {rnd}: {why}")
                player.q.requires_grad_(True)
                row.update(d_loss=gd["d_loss"], d_accuracy=gd["d_accuracy"], g_loss=gg["g_loss"],
                           steer_target_value=target_value)
                if "g_extra_loss" in gg:
                    row["g_difficulty_loss"] = gg["g_extra_loss"] / cfg.steer_weight
            # -- agent decision -> data generation: the designer searches G's latent space
            if designer is not None:
                with timer.part("designer"):
                    designer_env.G, designer_env.round = gan.sampler, rnd
                    for _ in range(max(1, plan["designer"] // dcfg.num_envs)):
                        designer.collect_step()
                    if designer.recent_returns:
                        row["designer_return"] = float(np.mean(designer.recent_returns))
                    if (loss := designer.pop_mean_loss()) is not None:
                        row["designer_loss"] = loss
            # -- step 5 (cont.): verified generated levels and the archive join the player's pool
            if cfg.generated_to_player:
                extra = _feedback(cfg, generated, archive)
                player.envs.set_source(player_pool(corpus, extra, cfg.generated_fraction))
                if demos is not None:
                    with timer.part("player"):
                        demos.feed(player, extra)
                    row["player_demo_transitions"] = demos.transitions
            out_of_time = cfg.max_seconds > 0 and time.perf_counter() - t_start >= cfg.max_seconds
            if (rnd + 1) % cfg.eval_every == 0 or rnd + 1 == cfg.rounds or out_of_time:
                with timer.part("evaluation"):
                    state["player_solve_rate"] = player_solve_rate(player.greedy_actions, heldout[: cfg.eval_levels])
                row["player_solve_rate"] = state["player_solve_rate"]
            row.update(archive_size=len(archive), g_evaluations=judge.evaluations, qd_coverage=grid.coverage,
                       qd_score=grid.qd_score, **_archive_means(archive),
                       **timer.shares())
            scheduler.observe(row.get("d_accuracy", 0.5), state["train_solve_rate"])
            logger.log(rnd + 1, row)
            logger.progress(rnd + 1, solve=state["player_solve_rate"], archive=len(archive),
                            playable=row["generated_playable_fraction"])
            state["round"] = rnd + 1
            if cfg.stuck_rounds and rnd + 1 >= cfg.stuck_rounds and state["train_solve_rate"] == 0.0 \
                    and not state["player_solve_rate"]:
                raise CLMStopped(f"the player is stuck: it solved no level in round {rnd + 1} (training pool and "
                                 "held-out); use smaller levels (level_size, n_boxes) or more player_steps")
            extra_state = {} if demos is None else {"demo_keys": sorted(demos.seen), "demo_transitions": demos.transitions}
            _save(ckpt, cfg, gan, player, designer, archive, scheduler, timer, rng, judge,
                  {**state, "generated": generated, "classic_rng": classic_rng.bit_generator.state,
                   "qd_grid": grid.state_dict(), **extra_state})
            if stop.requested:
                raise KeyboardInterrupt
            if out_of_time and rnd + 1 < cfg.rounds:
                message = (f"stopped at the time budget (max_seconds={cfg.max_seconds:g}) after round {rnd + 1} "
                           f"of {cfg.rounds}; continue with --resume {run_dir}")
                break
    except CLMStopped as e:
        status = "gan_diverged" if "GAN" in str(e) else "player_stuck"
        message = str(e)
    except KeyboardInterrupt:
        status = "interrupted"
        message = (f"interrupted after round {state['round']} (its checkpoint is whole); continue with --resume {run_dir}"
                   if stop.requested else f"interrupted in round {state['round'] + 1}; the last checkpoint is of round "
                   f"{state['round']}; continue with --resume {run_dir}")
    finally:
        stop.__exit__()
        logger.close()

    # -- outputs: levels, summary (and the report, written by the caller) -----------------------
    (run_dir / "levels").mkdir(exist_ok=True)
    write_levels(run_dir / "levels" / "real.txt", corpus[:64])
    if status != "gan_diverged":  # a diverged G makes nonsense levels: keep none
        z = np.random.default_rng(cfg.seed + 99).standard_normal((64, gcfg.z_dim)).astype(np.float32)
        write_levels(run_dir / "levels" / "samples.txt", decode_latents(gan.sampler, z, judge.n_boxes))
        if len(archive):
            write_levels(run_dir / "levels" / "archive.txt", archive.levels)
            atomic_write_text(run_dir / "levels" / "archive.jsonl",
                              "".join(json.dumps(r) + "\n" for r in archive.records))
    write_qd_grid(run_dir / "qd_grid.json", grid)
    summary = {
        "status": status, "message": message, "rounds": state["round"],
        "creative_levels": len(archive),
        "generated_playable_fraction": state.get("generated_playable_fraction"),
        **_archive_means(archive),
        "tile_kl": tile_pattern_kl(archive.levels, corpus) if len(archive) else None,
        "player_solve_rate": state["player_solve_rate"],
        "player_train_solve_rate": state["train_solve_rate"],
        "g_evaluations": judge.evaluations,
        "qd_coverage": grid.coverage, "qd_score": grid.qd_score,
        "player_env_steps": player.env_steps,
        "exact_resume": exact_resume,
        "wall_seconds": time.perf_counter() - t_start,
        **timer.shares(),
    }
    write_summary(run_dir, summary)
    return summary


# -- small pieces of the loop ------------------------------------------------------------------
def write_qd_grid(path: Path, grid: QDGrid) -> None:
    """The run's QD grid for the report: axes, cell qualities (null where empty), coverage, QD-score."""
    quality = [[None if np.isnan(q) else round(float(q), 4) for q in row] for row in grid.quality]
    atomic_write_text(path, json.dumps({
        "descriptors": list(grid.names), "bins": list(grid.bins), "ranges": [list(r) for r in grid.ranges],
        "quality": quality, "coverage": grid.coverage, "qd_score": grid.qd_score,
        "levels_offered": grid.offered, "filled": grid.filled}))


def _real_batch(real_x, feedback_x, fraction, n):
    """D's real data: the corpus, with a share from the archive when it feeds back."""
    idx = torch.randint(len(real_x), (n,))
    batch = real_x[idx]
    if feedback_x is not None and fraction > 0:
        k = int(round(n * fraction))
        batch[:k] = feedback_x[torch.randint(len(feedback_x), (k,))]
    return batch


@torch.no_grad()
def _target_value(player: DQN, real_x: torch.Tensor, quantile: float) -> tuple[float, float]:
    """The steer's target, a low quantile of the player's start-state values
    on real levels (levels somewhat harder than the typical real one), and
    the spread of those values (their standard deviation, at least 0.1)."""
    idx = torch.randint(len(real_x), (256,))
    v = start_state_values(player.q, real_x[idx])
    return float(torch.quantile(v, quantile)), max(float(v.std()), 0.1)


def _feedback(cfg: CLMConfig, generated: list, archive: CreativeArchive) -> list:
    # The classic oracle's pool holds the classic generator's levels only, none of G's.
    extra = list(archive.levels) if cfg.archive_feedback and cfg.pool_source == "generator" else []
    return extra + (generated if cfg.generated_to_player else [])


def _archive_means(archive: CreativeArchive) -> dict[str, float | None]:
    if not len(archive):
        return {"creative_novelty_mean": None, "creative_difficulty_mean": None}
    return {"creative_novelty_mean": float(np.mean([r["novelty"] for r in archive.records])),
            "creative_difficulty_mean": float(np.mean([r["pushes"] for r in archive.records]))}


def _save(ckpt: Path, cfg: CLMConfig, gan, player, designer, archive, scheduler, timer, rng, judge, state) -> None:
    """One checkpoint per round, all or nothing: every network, optimiser,
    buffer, counter and RNG of the run in one folder (``checkpoints/clm``)."""
    weights = {f"gan.{k}": v for k, v in gan.weights().items()}
    pw, pst, pmeta = player.training_state()
    weights.update({f"player.{k}": v for k, v in pw.items()})
    st = {"gan": gan.state_dict(), "scheduler": dataclasses.asdict(scheduler), "timer": dict(timer.seconds),
          "rng": rng.bit_generator.state, "global_rng": rng_state(), "g_evaluations": judge.evaluations,
          "archive": archive.state_dict(),
          "state": {**state, "generated": levels_state(state["generated"])},
          "player": pst, "player_meta": pmeta}
    exact = pmeta["exact_resume"]
    if designer is not None:
        dw, dst, dmeta = designer.training_state()
        weights.update({f"designer.{k}": v for k, v in dw.items()})
        st.update(designer=dst, designer_meta=dmeta)
        exact = exact and dmeta["exact_resume"]
    save_checkpoint(ckpt / "clm", weights, st, {"kind": "clm", "round": state["round"], "exact_resume": exact,
                                               "config": to_dict(cfg)})


def _load(ckpt, gan, player, designer, archive, scheduler, timer, rng, judge) -> tuple[dict, bool]:
    """Restore :func:`_save`'s checkpoint; returns the loop's state and whether the resume is exact."""
    weights, st, meta = load_checkpoint(ckpt / "clm")
    if meta.get("kind") != "clm":
        raise UserError(f"{ckpt / 'clm'} is not a CLM checkpoint (kind: {meta.get('kind')})")
    gan.load_weights(strip_prefix(weights, "gan."))
    gan.load_state_dict(st["gan"])
    archive.load_state_dict(st["archive"])
    for k, v in st["scheduler"].items():
        setattr(scheduler, k, v)
    timer.seconds.update(st["timer"])
    rng.bit_generator.state = st["rng"]
    judge.evaluations = int(st["g_evaluations"])
    player.load_training_state(strip_prefix(weights, "player."), st["player"], st["player_meta"], where=str(ckpt / "clm"))
    exact = player.exact_resume
    if designer is not None:
        if "designer" not in st:
            raise UserError(f"{ckpt / 'clm'} has no designer (the run had designer_search=false); resume with it off",
                            exit_code=2)
        designer.load_training_state(strip_prefix(weights, "designer."), st["designer"], st["designer_meta"], where=str(ckpt / "clm"))
        exact = exact and designer.exact_resume
    set_rng_state(st["global_rng"])  # last: loading the networks draws nothing, but keep the order obvious
    state = dict(st["state"])
    state["generated"] = levels_from_state(state["generated"])
    return state, exact
