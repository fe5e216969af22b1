"""The CLM on Sokoban levels: a player DQN that solves them, G that makes
them, a designer DQN that searches G's latent space for creative ones.

One implementation of :class:`clm.engine.domain.CLMDomain`: the judge (D's
realism, the exact solver, novelty), the creative archive and its QD grid,
the player's pool and its solver demonstrations (DQfD), the optional steer
of G by the player's values, and the designer. Levels, the simulator, the
solver, decoding, metrics and pictures live in :mod:`clm.domains.levels`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.dqn import DQN
from clm.agents.state_check import MAX_COUNT, check_training_state
from clm.agents.training import train_round
from clm.core.checkpoint import strip_prefix
from clm.core.errors import UserError
from clm.core.rundir import atomic_write_text
from clm.core.state_schema import (
    Anything,
    Arr,
    Bool,
    Bytes,
    Fixed,
    Float,
    Int,
    Opt,
    Rec,
    Seq,
    StateMismatch,
    Str,
    rng_schema,
    validate,
)
from clm.domains.levels import levels_to_onehot, levels_to_tiles, tiles_to_levels, write_levels
from clm.domains.levels.edit_env import random_edits
from clm.domains.levels.env import SokobanVecEnv
from clm.domains.levels.generator import LevelSampler
from clm.domains.levels.level import N_TILES
from clm.domains.levels.metrics import tile_pattern_kl
from clm.engine.archive import ScoredArchive
from clm.engine.parts import mixed_real_batch
from clm.levels_clm.config import CLMConfig
from clm.levels_clm.corpus import load_corpus, player_pool
from clm.levels_clm.couplings import (
    DemonstrationFeed,
    LevelJudge,
    archive_creative,
    archive_state,
    levels_from_state,
    levels_state,
    load_archive_state,
    player_solve_rate,
    player_solves,
)
from clm.levels_clm.designer import LatentDesignerEnv, decode_latents
from clm.levels_clm.edit_episodes import FILE as EDIT_EPISODES_FILE
from clm.levels_clm.edit_episodes import EditEpisodes, parse_edit_episodes
from clm.levels_clm.qd_grid import QDGrid
from clm.levels_clm.robustness import (
    d_robustness,
    flip_attack,
    inner_cells,
    player_robustness,
)
from clm.levels_clm.search import build_gan


class SokobanCLM:
    """The CLM's Sokoban domain (``clm run``, the main job)."""

    name = "levels"
    evaluation_keys = ("player_solve_rate",)
    success_flag = True  # a level is solved or not

    def __init__(self, cfg: CLMConfig, device: torch.device, run_dir=None):
        self.cfg, self.device = cfg, device
        self.corpus, self.heldout = load_corpus(cfg)
        self.generated: list = []  # solver-verified raw G samples offered to the player
        self.designer: DQN | None = None
        self.demos: DemonstrationFeed | None = None
        self.feedback_x: torch.Tensor | None = None
        self.edit_episodes = EditEpisodes() if cfg.edit_search else None  # the report's before/after pictures

    # -- step 1 ----------------------------------------------------------------------------------
    def real_data(self) -> torch.Tensor:
        return torch.from_numpy(levels_to_onehot(self.corpus)).float().to(self.device)

    def build_gan(self, shape, device):
        return build_gan(self.cfg, shape, device)

    def agent_env(self, gan) -> SokobanVecEnv:
        cfg = self.cfg
        self.judge = LevelJudge(levels_to_tiles(self.corpus), cfg.min_novelty, cfg.target_pushes, cfg.solve_time_limit,
                                 solver_jobs=cfg.solver_jobs)
        self.judge.n_boxes = self.judge.usual_box_count(self.corpus)
        self.archive = ScoredArchive(cfg.archive_size)
        self.grid = QDGrid(cfg.qd_descriptor, min_novelty=cfg.min_novelty)  # every judged level, G's and the designer's
        return SokobanVecEnv(player_pool(self.corpus, [], 0.0), num_envs=cfg.player.num_envs, seed=cfg.seed)

    def agent_config(self):
        cfg = self.cfg
        pcfg = replace(cfg.player, total_steps=cfg.rounds * cfg.player_steps, seed=cfg.seed, device=str(self.device))
        return pcfg if cfg.player_demos else replace(pcfg, demo_fraction=0.0, pretrain_steps=0)

    def attach(self, gan, agent, device) -> None:
        cfg = self.cfg
        dcfg = replace(cfg.designer, total_steps=max(1, cfg.rounds * cfg.designer_steps), seed=cfg.seed + 1,
                       device=str(device))
        self.designer_env = LatentDesignerEnv(gan.sampler, gan.D, self.judge,
                                              self.archive if cfg.archive_feedback else None,
                                              num_envs=dcfg.num_envs, horizon=cfg.designer_horizon,
                                              step_size=cfg.designer_step_size, seed=cfg.seed + 2)
        self.designer_env.on_judged = self.grid.offer
        self.designer_cfg = dcfg
        self.designer = DQN(dcfg, envs=self.designer_env) if cfg.designer_search else None
        self.gan, self.agent = gan, agent  # D for the adversarial flips, the player for the robustness figures
        self.classic = LevelSampler(cfg.level_size, cfg.n_boxes, cfg.min_pushes)
        self.classic_rng = np.random.default_rng(cfg.seed + 7_919)
        if agent.cfg.uses_demonstrations:
            self.demos = DemonstrationFeed(cfg.demo_symmetries, cfg.solve_time_limit)

    def start(self, agent, timer) -> dict[str, float]:
        if self.demos is None:
            return {}
        with timer.part("player"):
            self.demos.feed(agent, self.corpus)
            if agent.cfg.pretrain_steps:
                agent.pretrain()
        agent.envs.set_source(self._pool(self._feedback()))
        if not agent.cfg.pretrain_steps:
            return {}
        with timer.part("evaluation"):  # where the pre-trained player starts
            figures = self.evaluate(agent)
        return {**figures, "player_demo_transitions": self.demos.transitions}

    # -- step 2: G generates; the solver verifies; the archive keeps the creative ones -------------
    def generate(self, gan, agent, rng, rnd) -> dict[str, float]:
        cfg, judge, corpus = self.cfg, self.judge, self.corpus
        fed_back = cfg.archive_feedback and len(self.archive)
        judge.archive_tiles = levels_to_tiles(self.archive.items) if fed_back else None
        judge.refresh_bar(gan.D, [corpus[i] for i in rng.choice(len(corpus), 128)])
        z = rng.standard_normal((cfg.samples_per_round, cfg.gan.z_dim)).astype(np.float32)
        samples = decode_latents(gan.sampler, z, judge.n_boxes)
        j = judge.judge(gan.D, samples)
        archive_creative(self.archive, samples, j, "generator", rnd)
        self.grid.offer(samples, j)
        new_levels = [s for s, ok in zip(samples, j.playable) if ok]
        if cfg.pool_source == "classic":  # the oracle: as many levels from the generator that made the corpus
            new_levels = self.classic(self.classic_rng, len(new_levels)) if new_levels else []
        self.generated = (self.generated + new_levels)[-2000:]
        self.playable_fraction = float(j.playable.mean())
        row = {"generated_playable_fraction": self.playable_fraction,
               "generated_novelty_mean": float(j.novelty.mean()), "generated_realism_mean": float(j.realism.mean())}
        if cfg.edit_search:
            ok = np.flatnonzero(j.playable)
            row.update(self._edit_round(gan, agent, rng, rnd, [samples[i] for i in ok], [int(j.pushes[i]) for i in ok]))
        return row

    def _edit_round(self, gan, agent, rng, rnd, playable_samples: list, sample_pushes: list) -> dict[str, float]:
        """ACCEL's random edits (issue 25): 1-4 edits each of levels drawn from G's playable
        samples and the archive, judged like G's samples (they count as G evaluations);
        the creative ones join the archive and the grid, and the playable ones the player's
        greedy policy fails join its pool (its frontier)."""
        parents = playable_samples + list(self.archive.items)
        if not parents:
            return {"edit_playable_fraction": 0.0, "edit_creative": 0, "edit_frontier": 0}
        n = self.cfg.edits_per_round
        pick = rng.integers(len(parents), size=n)
        tiles = levels_to_tiles([parents[i] for i in pick])
        made: list = []
        edited = tiles_to_levels(random_edits(tiles, rng.integers(1, 5, n), rng, self.cfg.edit_max_boxes, log=made))
        j = self.judge.judge(gan.D, edited)
        pushes = sample_pushes + [int(r["pushes"]) for r in self.archive.records]
        sources = ["generator"] * len(playable_samples) + ["archive"] * len(self.archive)
        self.edit_episodes.offer(rnd, [parents[i] for i in pick], [pushes[i] for i in pick],
                                 [sources[i] for i in pick], edited, made, j)
        added = archive_creative(self.archive, edited, j, "edits", rnd)
        self.grid.offer(edited, j)
        playable = [lv for lv, ok in zip(edited, j.playable) if ok]
        frontier = [lv for lv, solved in zip(playable, player_solves(agent.greedy_actions, playable)) if not solved] \
            if playable else []
        if self.cfg.pool_source == "generator":  # the classic oracle's pool takes none of the CLM's levels
            self.generated = (self.generated + frontier)[-2000:]
        return {"edit_playable_fraction": float(j.playable.mean()), "edit_creative": added,
                "edit_frontier": len(frontier)}

    # -- steps 3 and 5: D on real (+ archive) against G; G on D's feedback --------------------------
    def gan_round(self, agent, real_x: torch.Tensor) -> tuple[Any, dict[str, float]]:
        fed = self.archive.items
        self.feedback_x = (torch.from_numpy(levels_to_onehot(fed)).float().to(self.device)
                           if self.cfg.archive_feedback and len(fed) else None)
        return None, {}  # no agent term in G's loss (the player's difficulty steer was removed in issue 24)

    def d_real_batch(self, real_x: torch.Tensor, n: int) -> torch.Tensor:
        """D's real data: the corpus, with a share from the archive when it feeds
        back; with ``d_adversarial_flips``, a share of it with D's own worst
        wall/floor flips (adversarial training: still real to D)."""
        batch = mixed_real_batch(real_x, self.feedback_x, self.cfg.archive_real_fraction, n)
        k = int(round(self.cfg.d_adversarial_fraction * len(batch))) if self.cfg.d_adversarial_flips else 0
        if k:
            head = batch[:k]
            batch = torch.cat([flip_attack(self.gan.D, head, self.cfg.d_adversarial_flips, movable=inner_cells(head)),
                               batch[k:]])
        return batch

    def other_fakes(self, n: int) -> None:
        return None  # D's fakes are G's levels only

    def g_condition(self, n: int, device) -> None:
        return None  # the CLM's level G is unconditional

    # -- agent decision -> data generation: the designer searches G's latent space ------------------
    def search(self, gan, rnd, timer) -> dict[str, float]:
        if self.designer is None:
            return {}
        row: dict[str, float] = {}
        with timer.part("designer"):
            self.designer_env.G, self.designer_env.round = gan.sampler, rnd
            played = train_round(self.designer, self.cfg.designer_steps)
            if played.mean_return is not None:
                row["designer_return"] = played.mean_return
            if played.loss is not None:
                row["designer_loss"] = played.loss
        return row

    # -- step 5 (cont.): verified generated levels and the archive join the player's pool ----------
    def feed_agent(self, agent, timer) -> dict[str, float]:
        if not self.cfg.generated_to_player:
            return {}
        extra = self._feedback()
        agent.envs.set_source(self._pool(extra))
        if self.demos is None:
            return {}
        with timer.part("player"):
            self.demos.feed(agent, extra)
        return {"player_demo_transitions": self.demos.transitions}

    def evaluate(self, agent) -> dict[str, float]:
        return {"player_solve_rate": player_solve_rate(agent.greedy_actions, self.heldout[: self.cfg.eval_levels])}

    def stuck(self, rnd: int, train_success_rate: float, headline: float | None) -> str | None:
        if self.cfg.stuck_rounds and rnd >= self.cfg.stuck_rounds and train_success_rate == 0.0 and not headline:
            return (f"the agent is stuck: it succeeded in no episode in round {rnd} (training and held-out); make "
                    "the task easier (smaller levels, fewer boxes) or give it more steps")
        return None

    def loaded(self, gan) -> None:
        pass  # a levels run is read back by clm.levels_clm.search.load_run, with its designer and archive

    def round_figures(self) -> dict[str, float]:
        return {"archive_size": len(self.archive), "g_evaluations": self.judge.evaluations,
                "qd_coverage": self.grid.coverage, "qd_score": self.grid.qd_score, **self._archive_means()}

    def progress(self) -> dict[str, float]:
        return {"archive": len(self.archive), "playable": self.playable_fraction}

    # -- checkpoint -------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict]:
        st = {"g_evaluations": self.judge.evaluations, "archive": archive_state(self.archive),
              "generated": levels_state(self.generated), "classic_rng": self.classic_rng.bit_generator.state,
              "qd_grid": self.grid.state_dict(), "exact": True}
        if self.demos is not None:
            st.update(demo_keys=sorted(self.demos.seen), demo_transitions=self.demos.transitions)
        if self.edit_episodes is not None:
            st["edit_episodes"] = self.edit_episodes.state()
        if self.designer is None:
            return {}, st
        w, dst, dmeta = self.designer.training_state()
        st.update(designer=dst, designer_meta=dmeta, exact=dmeta["exact_resume"])
        return {f"designer.{k}": v for k, v in w.items()}, st

    def check_state(self, weights, st, where: str) -> None:
        """Refuse (exit 2, naming the field) a state :meth:`checkpoint` of this config would not write."""
        cfg = self.cfg
        h, w = levels_to_tiles(self.corpus[:1]).shape[1:]
        tiles = Arr(np.dtype(np.int8), (None, h, w), values=(0, N_TILES - 1))
        levels = Rec({"tiles": Opt(tiles), "names": Seq(Str())})
        cells = int(np.prod(self.grid.bins))
        fields = {"g_evaluations": Int(0, MAX_COUNT),
                  "archive": Rec({"items": levels, "records": Seq(Rec({"novelty": Float(), "pushes": Int(0, None), "realism": Float(),
                                                          "score": Float(), "source": Str(), "round": Int(0, None)}),
                                                     max_len=cfg.archive_size),
                                  "keys": Seq(Bytes())}),
                  "generated": levels, "classic_rng": rng_schema(self.classic_rng),
                  "qd_grid": Rec({"bins": Fixed([Int(b, b) for b in self.grid.bins]),
                                  "cells": Arr(np.dtype(np.int32), (None,), max_rows=cells, values=(0, cells - 1)),
                                  "quality": Arr(np.dtype(np.float64), (None,), max_rows=cells),
                                  "measures": Arr(np.dtype(np.float64), (None, len(self.grid.bins)), max_rows=cells),
                                  "offered": Int(0, MAX_COUNT),
                                  "tiles": Arr(np.dtype(np.int8), (None, None, None), values=(0, N_TILES - 1))}),
                  "exact": Bool()}
        if self.demos is not None:
            fields.update(demo_keys=Seq(Bytes()), demo_transitions=Int(0, MAX_COUNT))
        if self.designer is not None:
            fields.update(designer=Anything(), designer_meta=Anything())  # the designer's own schema, below
        if self.edit_episodes is not None:  # checked by its own parser, below (absent: a run before it)
            fields.update(edit_episodes=Anything())
        validate(st, Rec(fields, optional=("designer", "designer_meta", "edit_episodes")), f"{where} (state.json)",
                 "domain")
        for name in ("archive", "generated"):
            part = st[name]["items"] if name == "archive" else st[name]
            n = 0 if part["tiles"] is None else len(part["tiles"])
            if len(part["names"]) != n or (name == "archive" and len(st["archive"]["records"]) != n):
                raise StateMismatch(f"{where} (state.json)", f"domain.{name}",
                                    "as many names (and records) as levels", f"{n} levels, {len(part['names'])} names")
        grid = st["qd_grid"]
        n = len(grid["cells"])
        if not (len(grid["quality"]) == len(grid["measures"]) == n and (n == 0 or grid["tiles"].shape == (n, h, w))):
            raise StateMismatch(f"{where} (state.json)", "domain.qd_grid", f"{n} qualities, measures and levels "
                                f"of {h}x{w}", f"{len(grid['quality'])}, {len(grid['measures'])}, {grid['tiles'].shape}")
        if self.edit_episodes is not None and "edit_episodes" in st:
            parse_edit_episodes(st["edit_episodes"], f"{where} (state.json) domain.edit_episodes")
        if self.designer is not None and "designer" in st:
            check_training_state(self.designer, strip_prefix(weights, "designer."), st["designer"],
                                 st["designer_meta"], where)

    def restore(self, weights, st, where: str) -> bool:
        self.check_state(weights, st, where)
        self.judge.evaluations = int(st["g_evaluations"])
        load_archive_state(self.archive, st["archive"])
        self.generated = levels_from_state(st["generated"])
        self.classic_rng.bit_generator.state = st["classic_rng"]
        self.grid.load_state_dict(st["qd_grid"])
        if self.demos is not None:
            self.demos.seen, self.demos.transitions = set(st["demo_keys"]), st["demo_transitions"]
        if self.edit_episodes is not None and "edit_episodes" in st:
            self.edit_episodes.load_state(st["edit_episodes"], f"{where} (state.json) domain.edit_episodes")
        if self.designer is None:
            return True
        if "designer" not in st:
            raise UserError(f"{where} has no designer (the run had designer_search=false); resume with it off",
                            exit_code=2)
        self.designer.load_training_state(strip_prefix(weights, "designer."), st["designer"], st["designer_meta"],
                                          where=where)
        return bool(self.designer.exact_resume)

    # -- outputs: levels, the QD grid, the summary's figures -----------------------------------------
    def finish(self, run_dir: Path, gan, status: str) -> dict[str, Any]:
        cfg, archive = self.cfg, self.archive
        (run_dir / "levels").mkdir(exist_ok=True)
        write_levels(run_dir / "levels" / "real.txt", self.corpus[:64])
        if status != "gan_diverged":  # a diverged G makes nonsense levels: keep none
            z = np.random.default_rng(cfg.seed + 99).standard_normal((64, cfg.gan.z_dim)).astype(np.float32)
            write_levels(run_dir / "levels" / "samples.txt", decode_latents(gan.sampler, z, self.judge.n_boxes))
            if len(archive):
                write_levels(run_dir / "levels" / "archive.txt", archive.items)
                atomic_write_text(run_dir / "levels" / "archive.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in archive.records))
        write_qd_grid(run_dir / "qd_grid.json", self.grid)
        if self.edit_episodes is not None:
            self.edit_episodes.write(run_dir / "levels" / EDIT_EPISODES_FILE)
        robust = {}
        if cfg.robustness_eval and status != "gan_diverged":
            held = self.heldout[: cfg.eval_levels]
            robust = {**player_robustness(self.agent.greedy_actions, held, seed=cfg.seed, noise_std=cfg.robustness_noise,
                                          time_limit=cfg.solve_time_limit),
                      **d_robustness(gan.D, held, device=self.device)}
        return {**robust, "creative_levels": len(archive),
                "generated_playable_fraction": getattr(self, "playable_fraction", None),
                **self._archive_means(),
                "tile_kl": tile_pattern_kl(archive.items, self.corpus) if len(archive) else None,
                "g_evaluations": self.judge.evaluations,
                "qd_coverage": self.grid.coverage, "qd_score": self.grid.qd_score}

    # -- small pieces --------------------------------------------------------------------------------
    def _pool(self, extra: list):
        """The player's pool: the corpus, with ``extra`` as ``generated_fraction`` of it."""
        return player_pool(self.corpus, extra, self.cfg.generated_fraction)

    def _feedback(self) -> list:
        cfg = self.cfg
        # The classic oracle's pool holds the classic generator's levels only, none of G's.
        extra = list(self.archive.items) if cfg.archive_feedback and cfg.pool_source == "generator" else []
        return extra + (self.generated if cfg.generated_to_player else [])

    def _archive_means(self) -> dict[str, float | None]:
        if not len(self.archive):
            return {"creative_novelty_mean": None, "creative_difficulty_mean": None}
        return {"creative_novelty_mean": float(np.mean([r["novelty"] for r in self.archive.records])),
                "creative_difficulty_mean": float(np.mean([r["pushes"] for r in self.archive.records]))}


def write_qd_grid(path: Path, grid: QDGrid) -> None:
    """The run's QD grid for the report: axes, cell qualities (null where empty), coverage, QD-score."""
    quality = [[None if np.isnan(q) else round(float(q), 4) for q in row] for row in grid.quality]
    atomic_write_text(path, json.dumps({
        "descriptors": list(grid.names), "bins": list(grid.bins), "ranges": [list(r) for r in grid.ranges],
        "quality": quality, "coverage": grid.coverage, "qd_score": grid.qd_score,
        "levels_offered": grid.offered, "filled": grid.filled}))
