"""The levels CLM's couplings, each small and named after what it does.

- ``LevelJudge``: scores generated levels on the four creative criteria:
  realism (D), playable and difficulty (the exact solver), novelty (distance
  to the corpus and the archive).
- ``archive_creative``: the best creative levels go into the run's archive
  (:class:`clm.engine.archive.ScoredArchive`); fed back to D as real data
  and to the player's pool (creative data -> data generation).
- ``player_solve_rate``: the player's greedy solve rate on given levels.
- ``DemonstrationFeed``: the exact solver's solutions of levels new to the
  player's pool (real or generated) as DQfD demonstrations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from clm.domains.levels import Level, levels_to_onehot, levels_to_tiles, tiles_to_levels
from clm.domains.levels.demos import solver_demonstrations
from clm.domains.levels.env import SokobanVecEnv
from clm.domains.levels.metrics import novelty
from clm.domains.levels.solver import solve_levels
from clm.engine.archive import ScoredArchive


@dataclass
class Judgement:
    """Per-level figures of a batch of candidate levels (arrays of length N)."""

    realism: np.ndarray  # D's probability that the level is real
    playable: np.ndarray  # solved by the exact solver within its limit, with at least one push
    pushes: np.ndarray  # optimal pushes (-1 unless playable)
    novelty: np.ndarray  # min Hamming distance to corpus and archive
    score: np.ndarray  # the designer's reward: the weighted sum of the criteria
    creative: np.ndarray  # playable, novel enough and realistic enough


@dataclass
class LevelJudge:
    """Judges candidate levels against the creative criteria.

    A level is *creative* when it is playable, its novelty is at least
    ``min_novelty`` cells and D finds it at least as real as the median real
    level (``realism_bar``, refreshed each round from the corpus).
    """

    corpus_tiles: np.ndarray  # (N, H, W) int8, the training corpus
    min_novelty: int = 3
    target_pushes: float = 8.0  # pushes at which the difficulty term saturates
    solve_time_limit: float = 1.0
    solver_jobs: int = 1  # workers for the solver checks (see solve_levels: Ray's when running, else processes)
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # realism, playable, novelty, difficulty
    realism_bar: float = 0.5
    archive_tiles: np.ndarray | None = None
    n_boxes: int | None = None  # boxes G's levels are decoded with: the corpus's usual count
    solver_seconds: float = 0.0  # running total, for the time shares
    evaluations: int = 0

    @torch.no_grad()
    def realism(self, D: torch.nn.Module, levels: list[Level]) -> np.ndarray:
        x = torch.from_numpy(levels_to_onehot(levels)).float()
        logits, _ = D(x.to(next(D.parameters()).device))
        return torch.sigmoid(logits.float()).cpu().numpy()

    @staticmethod
    def usual_box_count(levels: list[Level]) -> int:
        return int(np.bincount([lv.n_boxes for lv in levels]).argmax())

    def refresh_bar(self, D: torch.nn.Module, real_levels: list[Level]) -> None:
        self.realism_bar = float(np.median(self.realism(D, real_levels)))

    def judge(self, D: torch.nn.Module, levels: list[Level]) -> Judgement:
        self.evaluations += len(levels)
        real = self.realism(D, levels)
        t = time.perf_counter()
        results = solve_levels(levels, time_limit=self.solve_time_limit, n_jobs=self.solver_jobs)
        self.solver_seconds += time.perf_counter() - t
        # A level that starts solved (0 pushes) is not a puzzle: it does not count as playable.
        playable = np.array([r.solved and r.pushes > 0 for r in results])
        pushes = np.array([r.pushes if r.solved else -1 for r in results])
        ref = self.corpus_tiles if self.archive_tiles is None else np.concatenate([self.corpus_tiles, self.archive_tiles])
        nov = novelty(levels_to_tiles(levels), ref).astype(np.float64)
        w_real, w_play, w_nov, w_diff = self.weights
        difficulty = np.clip(pushes / self.target_pushes, 0.0, 1.0) * playable
        score = (w_real * real + w_play * playable + w_nov * np.minimum(nov / max(self.min_novelty, 1), 1.0)
                 + w_diff * difficulty)
        creative = playable & (nov >= self.min_novelty) & (real >= self.realism_bar)
        return Judgement(real, playable, pushes, nov, score, creative)


def levels_state(levels: list[Level]) -> dict:
    """Levels as plain data for a checkpoint: their tile grids (one size) and names."""
    return {"tiles": levels_to_tiles(levels) if levels else None, "names": [lv.name for lv in levels]}


def levels_from_state(state: dict) -> list[Level]:
    """The inverse of :func:`levels_state`."""
    return [] if state["tiles"] is None else tiles_to_levels(state["tiles"], names=state["names"])


def archive_creative(archive: ScoredArchive, levels: list[Level], j: Judgement, source: str, round_: int) -> int:
    """Offer a judged batch's creative levels to the run's archive (one per layout); returns how many it took."""
    idx = np.flatnonzero(j.creative)
    records = [{"novelty": float(j.novelty[i]), "pushes": int(j.pushes[i]), "realism": float(j.realism[i]),
                "score": float(j.score[i]), "source": source, "round": round_} for i in idx]
    return archive.add([levels[i] for i in idx], [levels[i].key() for i in idx], records)


def archive_state(archive: ScoredArchive) -> dict:
    """The levels archive as plain data for a checkpoint."""
    return archive.state_dict(levels_state(archive.items))


def load_archive_state(archive: ScoredArchive, state: dict) -> None:
    archive.load_state_dict(state, levels_from_state(state["items"]))


def player_solves(policy, levels: list[Level], num_envs: int = 64, max_steps: int = 120) -> np.ndarray:
    """(N,) bool: which ``levels`` the greedy ``policy(obs) -> actions``
    solves, each played once from its start within ``max_steps`` moves."""
    solved = np.zeros(len(levels), bool)
    for i in range(0, len(levels), num_envs):
        chunk = levels[i:i + num_envs]
        env = SokobanVecEnv(chunk, num_envs=len(chunk), max_steps=max_steps)
        obs, _ = env.reset(options={"levels": chunk})
        running = np.ones(len(chunk), bool)
        for _ in range(max_steps):
            obs, _, term, trunc, info = env.step(policy(obs))
            solved[i:i + len(chunk)] |= info["solved"] & running
            running &= ~(term | trunc)
            if not running.any():
                break
    return solved


def player_solve_rate(policy, levels: list[Level], num_envs: int = 64, max_steps: int = 120) -> float:
    """Fraction of ``levels`` the greedy ``policy(obs) -> actions`` solves (see :func:`player_solves`)."""
    return float(player_solves(policy, levels, num_envs, max_steps).mean()) if levels else 0.0


@dataclass
class DemonstrationFeed:
    """Gives the player the solver's solution of every level that joins its
    pool, once per layout: the corpus at the start, then each round's
    verified generated and archived levels (generated data trains the agent
    through its solutions, not only as extra levels to explore)."""

    symmetries: bool = True
    time_limit: float = 1.0
    seen: set = field(default_factory=set)
    transitions: int = 0  # demonstration transitions given so far

    def feed(self, agent, levels: list[Level]) -> int:
        """Add the demonstrations of the levels not fed before; returns how many transitions."""
        new, keys = [], set()
        for lv in levels:
            k = lv.key()
            if k not in self.seen and k not in keys:
                keys.add(k)
                new.append(lv)
        self.seen |= keys
        if not new:
            return 0
        d = solver_demonstrations(new, time_limit=self.time_limit, symmetries=self.symmetries)
        if len(d) == 0:
            return 0
        agent.add_demonstrations(d.obs, d.actions, d.rewards, d.next_obs, d.terminated, d.episode_end)
        self.transitions += len(d)
        return len(d)
