"""The creative archive as a quality-diversity (QD) grid, and QD searches over
G's latent space at an exact budget of G evaluations.

``QDGrid`` files every judged level in a 2-D grid over two behaviour
descriptors a designer cares about: optimal pushes (always the first axis)
and one of wall density, box-goal distance or D's realism. Each cell keeps
its best level; coverage (filled cells / all cells) and the QD-score (sum of
the cells' qualities) say how much of that space a search illuminated.

The searches (``SEARCHES``, name -> function) all judge their levels through
one ``LatentQDProblem``, which decodes z with G, judges the levels with the
run's ``LevelJudge``, files them in the grid and stops at the budget, so
every search is measured by the same grid at the same cost:

- ``random``: z ~ N(0, I) (``search.random_search``);
- ``cmaes``: CMA-ES maximising the judge's score (``search.cmaes_search``, the
  ``cma`` package), a single-objective optimiser, not a QD method;
- ``map_elites``: MAP-Elites with pyribs' GridArchive, GaussianEmitter and
  Scheduler;
- ``cma_me``: CMA-ME, pyribs' EvolutionStrategyEmitter with the two-stage
  improvement ranker (Fontaine et al. 2020), as in the illumination of GAN
  latent spaces for game levels;
- ``designer``: a CLM run's trained designer DQN acting epsilon-greedily in
  its latent-space env (as ``search.designer_search``);
- ``designer_map_elites``: MAP-Elites whose scheduler also asks the designer
  for proposals (a ribs emitter that walks the designer's policy from the
  archive's elites);
- ``designer_qd``: the designer keeps learning while it searches, rewarded by
  what each of its levels adds to the grid (a new cell: its quality; a better
  elite: the gain), with steps of ``QD_DESIGNER_STEP``; ``train_qd_designer``
  trains one on that reward beforehand (levers tried for problem 2; see
  docs/results.md).

The grid here is the measuring instrument, identical for every search; the
ribs searches keep their own GridArchive (same cells) as their algorithm's
state, which is what pyribs is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from ribs.archives import GridArchive
from ribs.emitters import EmitterBase, EvolutionStrategyEmitter, GaussianEmitter
from ribs.schedulers import Scheduler

from clm.agents.dqn import DQN
from clm.core.errors import UserError
from clm.domains.levels import Level, levels_to_tiles
from clm.domains.levels.level import WALL
from clm.hybrid.couplings import Judgement, LevelJudge
from clm.hybrid.designer import LatentDesignerEnv, decode_latents, designer_observation
from clm.hybrid.search import cmaes_search, random_search


# -- behaviour descriptors ------------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    """One axis of the grid: its default range and bin count, and what it measures."""

    name: str
    low: float
    high: float
    bins: int
    meaning: str


#: The descriptors a grid may use; ``pushes`` is always the first axis. The default ranges and
#: bins fit the default 7x7, one-box corpus (its levels have 3-8 pushes, interior wall densities
#: 0-0.76 and box-goal distances 3-7), one bin per value: pushes 1..12 (harder levels share the
#: top bin), wall density k/25 for the 25 interior cells, whole-cell distances 1..8.
DESCRIPTORS: dict[str, Descriptor] = {d.name: d for d in (
    Descriptor("pushes", 0.5, 12.5, 12, "optimal pushes (the exact solver's shortest solution)"),
    Descriptor("wall_density", 0.0, 0.8, 20, "walls among the cells inside the outer ring"),
    Descriptor("box_goal_distance", 0.5, 8.5, 8, "mean Manhattan distance of each box to its nearest goal"),
    Descriptor("realism", 0.0, 1.0, 10, "D's probability that the level is real"),
)}
SECOND_AXES = tuple(n for n in DESCRIPTORS if n != "pushes")


def wall_density(levels: list[Level]) -> np.ndarray:
    """Fraction of walls among the cells inside the outer ring of each level
    (the ring is wall in every valid level, so it would only dilute the figure)."""
    tiles = levels_to_tiles(levels)
    inner = tiles[:, 1:-1, 1:-1] if min(tiles.shape[1:]) > 2 else tiles
    return (inner == WALL).mean(axis=(1, 2))


def box_goal_distance(levels: list[Level]) -> np.ndarray:
    """Mean over a level's boxes of the Manhattan distance to the nearest goal
    (0 for a box on a goal; 0 for a level without boxes)."""
    out = np.zeros(len(levels))
    for i, lv in enumerate(levels):
        boxes, goals = np.argwhere(lv.boxes), np.argwhere(lv.goals)
        if len(boxes) and len(goals):
            d = np.abs(boxes[:, None, :] - goals[None, :, :]).sum(axis=2)
            out[i] = d.min(axis=1).mean()
    return out


def descriptor_values(name: str, levels: list[Level], j: Judgement) -> np.ndarray:
    """The named descriptor of each level, from the level itself or the judge's figures."""
    if name == "pushes":
        return np.asarray(j.pushes, dtype=np.float64)
    if name == "realism":
        return np.asarray(j.realism, dtype=np.float64)
    if name == "wall_density":
        return wall_density(levels)
    if name == "box_goal_distance":
        return box_goal_distance(levels)
    raise UserError(f"unknown behaviour descriptor '{name}': valid ones are {', '.join(DESCRIPTORS)}")


def _rows(j: Judgement, idx) -> Judgement:
    """The judgement of some rows of a batch."""
    return Judgement(**{f: np.asarray(v)[idx] for f, v in vars(j).items()})


# -- the grid ---------------------------------------------------------------------------------
class QDGrid:
    """The creative archive as a grid over (optimal pushes, ``second``).

    Quality of a level: the judge's score (``Judgement.score``: realism +
    playable + capped novelty + capped difficulty, each weighted) for a level
    that is *eligible*, i.e. playable (solved, at least one push) and novel
    (Hamming novelty >= ``min_novelty`` cells); an ineligible level has no
    quality and never enters the grid. With the judge's unit weights an
    eligible level's quality lies in [2, 4], so the QD-score is close to 2-4
    times the number of filled cells.

    Cells: each axis splits [low, high] into ``bins`` equal bins; a value
    outside the range goes to the edge bin (as pyribs' GridArchive does), so
    e.g. the top pushes bin holds every level at or above its lower edge. A
    cell keeps the best-quality level offered to it (a tie keeps the older).
    """

    def __init__(self, second: str = "wall_density", bins: tuple[int, int] | None = None,
                 ranges: tuple[tuple[float, float], tuple[float, float]] | None = None, min_novelty: int = 3):
        if second not in SECOND_AXES:
            raise UserError(f"unknown second behaviour descriptor '{second}': valid ones are "
                            f"{', '.join(SECOND_AXES)} (the first axis is always pushes)")
        self.names = ("pushes", second)
        axes = [DESCRIPTORS[n] for n in self.names]
        bins = tuple(d.bins for d in axes) if bins is None else tuple(bins)
        ranges = tuple((d.low, d.high) for d in axes) if ranges is None else tuple(tuple(r) for r in ranges)
        if len(bins) != 2 or len(ranges) != 2:
            raise UserError(f"a QD grid has two axes ({', '.join(self.names)}): give two bin counts and two ranges")
        for name, b in zip(self.names, bins):
            if int(b) != b or b < 1:
                raise UserError(f"bins of descriptor '{name}' must be an integer >= 1, got {b}")
        for name, r in zip(self.names, ranges):
            if len(r) != 2 or not np.all(np.isfinite(r)) or not r[0] < r[1]:
                raise UserError(f"range of descriptor '{name}' must be (low, high) with finite low < high, got {r}")
        self.bins = tuple(int(b) for b in bins)
        self.ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
        self.min_novelty = min_novelty
        self.quality = np.full(self.bins, np.nan)  # NaN: empty cell
        self.levels = np.empty(self.bins, dtype=object)
        self.measures = np.full((*self.bins, 2), np.nan)
        self.latents = np.empty(self.bins, dtype=object)  # the z of each elite, when the search gave it
        self.offered = 0  # levels offered to add(), eligible or not

    # -- per-level figures
    def descriptors(self, levels: list[Level], j: Judgement) -> np.ndarray:
        """(N, 2) behaviour descriptors of judged levels, in axis order."""
        return np.stack([descriptor_values(n, levels, j) for n in self.names], axis=1)

    def eligible(self, j: Judgement) -> np.ndarray:
        """Levels that may enter the grid: playable and at least ``min_novelty`` novel."""
        return np.asarray(j.playable, bool) & (np.asarray(j.novelty) >= self.min_novelty)

    def cells(self, measures: np.ndarray) -> np.ndarray:
        """(N, 2) int cell of each row of descriptors; out-of-range values go to the edge bins.
        The small epsilon is pyribs' own: a value on a bin edge lands in the upper bin despite
        rounding (0.3 * 10 is 2.9999999999999996 in floating point)."""
        measures = np.atleast_2d(np.asarray(measures, dtype=np.float64))
        out = np.empty(measures.shape, dtype=np.int64)
        for k, ((lo, hi), b) in enumerate(zip(self.ranges, self.bins)):
            out[:, k] = np.clip(np.floor((b * (measures[:, k] - lo) + 1e-6) / (hi - lo)), 0, b - 1)
        return out

    # -- filling
    def offer(self, levels: list[Level], j: Judgement, latents: np.ndarray | None = None) -> np.ndarray:
        """File a judged batch in order; returns each level's gain in QD-score (its
        quality for a new cell, the improvement over the old elite, else 0)."""
        self.offered += len(levels)
        gains = np.zeros(len(levels))
        ok = self.eligible(j)
        if not ok.any():
            return gains
        idx = np.flatnonzero(ok)
        sub = [levels[i] for i in idx]
        sub_j = _rows(j, idx)
        measures = self.descriptors(sub, sub_j)
        cells = self.cells(measures)
        for k, i in enumerate(idx):
            c = tuple(cells[k])
            q = float(j.score[i])
            old = self.quality[c]
            if np.isnan(old) or q > old:
                gains[i] = q if np.isnan(old) else q - old
                self.quality[c] = q
                self.levels[c] = levels[i]
                self.measures[c] = measures[k]
                self.latents[c] = None if latents is None else np.array(latents[i], dtype=np.float32)
        return gains

    def add(self, levels: list[Level], j: Judgement, latents: np.ndarray | None = None) -> int:
        """File a judged batch; returns how many cells it filled or improved."""
        before = self.quality.copy()
        self.offer(levels, j, latents)
        improved = ~np.isnan(self.quality) & (np.isnan(before) | (self.quality > before))
        return int(improved.sum())

    # -- figures
    @property
    def filled(self) -> int:
        return int((~np.isnan(self.quality)).sum())

    @property
    def coverage(self) -> float:
        """Filled cells / all cells."""
        return self.filled / self.quality.size

    @property
    def qd_score(self) -> float:
        """Sum of the filled cells' qualities."""
        return float(np.nansum(self.quality))

    def heatmap(self) -> np.ndarray:
        """(pushes bins, second bins) array of cell qualities, NaN where empty (row: pushes bin)."""
        return self.quality.copy()

    def elites(self) -> list[Level]:
        """The filled cells' levels, in cell order."""
        return [lv for lv in self.levels.ravel() if lv is not None]

    def state_dict(self) -> dict:
        """Arrays only (checkpoints hold no pickles): qualities, descriptors, the
        elites as tile grids with their flat cell index, and the offered count."""
        cells = np.flatnonzero(~np.isnan(self.quality.ravel()))
        elites = [self.levels.ravel()[c] for c in cells]
        return {"quality": self.quality.copy(), "measures": self.measures.copy(), "offered": self.offered,
                "cells": cells, "tiles": levels_to_tiles(elites) if elites else np.zeros((0, 0, 0), np.int8)}

    def load_state_dict(self, state: dict) -> None:
        from clm.domains.levels import tiles_to_levels

        if np.shape(state["quality"]) != self.bins:
            raise UserError(f"the checkpoint's QD grid has {np.shape(state['quality'])} cells; this config's "
                            f"has {self.bins}: resume with the config the run started with")
        self.quality[...], self.measures[...], self.offered = state["quality"], state["measures"], int(state["offered"])
        flat = self.levels.reshape(-1)
        for c, lv in zip(state["cells"], tiles_to_levels(state["tiles"]) if len(state["cells"]) else []):
            flat[int(c)] = lv

    def elite_latents(self) -> np.ndarray:
        """(M, z_dim) latent vectors of the elites whose search gave them (possibly none)."""
        zs = [z for z in self.latents.ravel() if z is not None]
        return np.stack(zs) if zs else np.empty((0, 0), np.float32)


# -- the problem every search spends its budget on ---------------------------------------------
class BudgetSpent(Exception):
    """Raised inside a search when a batch would pass the budget (its head was judged)."""


@dataclass
class LatentQDProblem:
    """G's latent space as a QD problem with a budget of G evaluations.

    ``judge_levels`` judges at most the remaining budget of a batch with the
    run's judge and D, files them in ``grid`` and records the curve
    (evaluations, coverage, QD-score) after each batch.
    """

    G: torch.nn.Module
    D: torch.nn.Module
    judge: LevelJudge
    grid: QDGrid
    budget: int
    evaluations: int = 0
    curve: list = field(default_factory=list)
    last_gains: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def remaining(self) -> int:
        return self.budget - self.evaluations

    @property
    def z_dim(self) -> int:
        return int(self.G.z_dim)

    @property
    def n_boxes(self) -> int | None:
        return self.judge.n_boxes

    def judge_levels(self, levels: list[Level], latents: np.ndarray | None = None) -> Judgement:
        """Judge the first ``remaining`` levels of a batch; returns their judgement (maybe shorter)."""
        levels = levels[: max(self.remaining, 0)]
        if not levels:
            return Judgement(**{f.name: np.zeros(0) for f in fields(Judgement)})
        j = self.judge.judge(self.D, levels)
        self.evaluations += len(levels)
        self.last_gains = self.grid.offer(levels, j, None if latents is None else latents[: len(levels)])
        self.curve.append((self.evaluations, self.grid.coverage, self.grid.qd_score))
        return j

    def evaluate(self, z: np.ndarray) -> tuple[list[Level], Judgement]:
        """Decode latent vectors with G and judge them (at most the remaining budget)."""
        z = np.asarray(z, dtype=np.float32)[: max(self.remaining, 0)]
        levels = decode_latents(self.G, z, self.n_boxes) if len(z) else []
        return levels, self.judge_levels(levels, z)

    def as_judge(self, strict: bool = False) -> SimpleNamespace:
        """A stand-in for the ``LevelJudge`` (``.judge(D, levels)``, ``.n_boxes``) that goes
        through the budget and the grid. ``strict``: a batch that passes the budget raises
        ``BudgetSpent`` after its head was judged (for callers that need every level judged)."""
        def judge(_D, levels):
            j = self.judge_levels(levels)
            if strict and len(j.score) < len(levels):
                raise BudgetSpent
            return j
        return SimpleNamespace(judge=judge, n_boxes=self.n_boxes, min_novelty=self.judge.min_novelty)


# -- searches -------------------------------------------------------------------------------------
def search_random(p: LatentQDProblem, seed: int, **_) -> None:
    """z ~ N(0, I), judged in batches of 64."""
    random_search(p.G, p.D, p.as_judge(), p.budget, np.random.default_rng(seed), accept=_none)


def search_cmaes(p: LatentQDProblem, seed: int, **_) -> None:
    """CMA-ES maximising the judge's score, restarted every 40 generations (``search.cmaes_search``)."""
    cmaes_search(p.G, p.D, p.as_judge(), p.budget, seed, accept=_none)


def _none(levels, j):
    return np.zeros(len(levels), bool)  # the grid keeps what counts; the searches' own lists are not needed


FEATURES = ("realism", "playable", "novelty", "pushes")  # judge figures ribs carries to the emitters


def _ribs_archive(p: LatentQDProblem, seed: int):
    return GridArchive(solution_dim=p.z_dim, dims=p.grid.bins, ranges=p.grid.ranges, seed=seed,
                       extra_fields={f: ((), np.float64) for f in FEATURES})


#: Ribs needs an objective for every solution: an ineligible level (unplayable or not novel)
#: gets its score minus this, below any eligible level's, so it may hold an empty cell of
#: ribs' archive as a stepping stone but is replaced by the first eligible level there.
INELIGIBLE_PENALTY = 10.0


def _run_scheduler(p: LatentQDProblem, scheduler) -> None:
    """Ask-evaluate-tell until the budget is spent; a last batch cut by the budget is not told."""
    while p.remaining > 0:
        z = scheduler.ask()
        levels, j = p.evaluate(z)
        if len(levels) < len(z):
            break
        objective = np.where(p.grid.eligible(j), j.score, j.score - INELIGIBLE_PENALTY)
        scheduler.tell(objective, p.grid.descriptors(levels, j), **{f: np.asarray(getattr(j, f), np.float64) for f in FEATURES})


def search_map_elites(p: LatentQDProblem, seed: int, sigma: float = 0.5, batch: int = 32, **_) -> None:
    """MAP-Elites (pyribs): a first batch from N(0, I), then Gaussian mutations of random elites."""
    rng = np.random.default_rng(seed)
    archive = _ribs_archive(p, seed)
    emitter = GaussianEmitter(archive, sigma=sigma, initial_solutions=rng.standard_normal((batch, p.z_dim)),
                              batch_size=batch, seed=seed + 1)
    _run_scheduler(p, Scheduler(archive, [emitter]))


def search_cma_me(p: LatentQDProblem, seed: int, sigma0: float = 1.0, emitters: int = 2, batch: int = 16,
                  **_) -> None:
    """CMA-ME (pyribs): improvement-ranked CMA-ES emitters ('2imp', filter selection,
    restart when no cell improves) from z = 0 with step ``sigma0`` (z's prior scale)."""
    archive = _ribs_archive(p, seed)
    ems = [EvolutionStrategyEmitter(archive, x0=np.zeros(p.z_dim), sigma0=sigma0, ranker="2imp",
                                    selection_rule="filter", restart_rule="no_improvement", batch_size=batch,
                                    seed=seed + 1 + k) for k in range(emitters)]
    _run_scheduler(p, Scheduler(archive, ems))


def search_designer(p: LatentQDProblem, seed: int, designer: DQN | None = None, epsilon: float = 0.1,
                    **_) -> None:
    """The trained designer DQN acting epsilon-greedily in its own latent-space env (as
    ``search.designer_search``), every level it makes judged through the problem."""
    env = _require_designer(designer).envs
    saved = env.judge, env.archive, env.G, env.D
    env.judge, env.archive, env.G, env.D = p.as_judge(strict=True), None, p.G, p.D
    designer.rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        while p.remaining > 0:
            obs, *_ = env.step(designer.act(obs, epsilon))
    except BudgetSpent:
        pass
    finally:
        env.judge, env.archive, env.G, env.D = saved


def _require_designer(designer):
    if designer is None:
        raise UserError("this search needs a CLM run's designer DQN (the run was made with designer_search=false?)")
    return designer


class DesignerEmitter(EmitterBase):
    """A pyribs emitter that proposes the designer DQN's moves: ``batch`` walks of
    ``horizon`` moves, each starting from an elite of the archive (N(0, I) while it is
    empty) and moving one z coordinate by +-``step_size`` per move, as the designer's
    policy (epsilon-greedy) chooses from the judge's figures of its current level."""

    def __init__(self, archive, designer: DQN, batch: int = 16, horizon: int = 8, step_size: float = 0.5,
                 epsilon: float = 0.1, seed: int = 0):
        super().__init__(archive, solution_dim=archive.solution_dim, bounds=None, lower_bounds=None,
                         upper_bounds=None)
        self.designer, self.batch, self.horizon = designer, batch, horizon
        self.step_size, self.epsilon = step_size, epsilon
        self.rng = np.random.default_rng(seed)
        self._z: np.ndarray | None = None
        self._t = np.zeros(batch)  # moves made so far in each walk
        self._j: Judgement | None = None

    @property
    def batch_size(self) -> int:
        return self.batch

    def _starts(self, n: int) -> np.ndarray:
        if self.archive.empty:
            return self.rng.standard_normal((n, self.solution_dim))
        return self.archive.sample_elites(n)["solution"]

    def ask(self) -> np.ndarray:
        """One latent vector per walk: its next move, or a fresh start from an elite."""
        if self._z is None or self._j is None:  # first call: the walks' starting levels are judged first
            self._z = self._starts(self.batch)
            self._t[:] = 0
            return self._z.copy()
        ended = self._t >= self.horizon  # walks whose last level was judged: start again from an elite
        moving = np.flatnonzero(~ended)
        z = self._z.copy()
        if len(moving):
            obs = designer_observation(z[moving], _rows(self._j, moving), self._t[moving], self.horizon)
            actions = self.designer.act(obs, self.epsilon)
            z[moving, actions // 2] += np.where(actions % 2 == 0, 1.0, -1.0) * self.step_size
            self._t[moving] += 1
        if ended.any():
            z[ended] = self._starts(int(ended.sum()))
            self._t[ended] = 0
        self._z = z
        return z.copy()

    def tell(self, solution, objective, measures, add_info, **figures) -> None:
        """Keep the judge's figures of the levels just proposed: the designer's next observation."""
        self._j = Judgement(realism=np.asarray(figures["realism"]), playable=np.asarray(figures["playable"]) > 0.5,
                            pushes=np.asarray(figures["pushes"]), novelty=np.asarray(figures["novelty"]),
                            score=np.asarray(objective), creative=np.zeros(len(objective), bool))


def search_designer_map_elites(p: LatentQDProblem, seed: int, designer: DQN | None = None, sigma: float = 0.5,
                               batch: int = 16, epsilon: float = 0.1, **_) -> None:
    """MAP-Elites whose scheduler asks both a Gaussian emitter and the designer
    (``DesignerEmitter``) for proposals: half of each batch is the designer's."""
    designer = _require_designer(designer)
    rng = np.random.default_rng(seed)
    archive = _ribs_archive(p, seed)
    gauss = GaussianEmitter(archive, sigma=sigma, initial_solutions=rng.standard_normal((batch, p.z_dim)),
                            batch_size=batch, seed=seed + 1)
    env = designer.envs
    proposer = DesignerEmitter(archive, designer, batch=batch, horizon=env.horizon, step_size=env.step_size,
                               epsilon=epsilon, seed=seed + 2)
    _run_scheduler(p, Scheduler(archive, [gauss, proposer]))


#: Latent step of the QD-rewarded designer: larger than the CLM's 0.5, since larger steps gave
#: the designer more QD-score on a development run (docs/results.md, "Problem 2 (QD)").
QD_DESIGNER_STEP = 1.0


class QDDesignerEnv(LatentDesignerEnv):
    """The designer's latent-space env rewarded for illuminating the grid: a step's
    reward is what its level added to the QD-score (new cell: its quality; better
    elite: the gain; else 0). A share 1 - ``fresh`` of the walks restart from the
    grid's elites, the others (all, while the grid is empty) from N(0, I)."""

    def __init__(self, problem: LatentQDProblem, num_envs: int, horizon: int, step_size: float, seed: int,
                 fresh: float = 1.0):
        super().__init__(problem.G, problem.D, problem.judge, None, num_envs=num_envs,
                         horizon=horizon, step_size=step_size, seed=seed)
        self.problem, self.fresh = problem, fresh

    def _judge(self, z):
        levels = decode_latents(self.G, z, self.judge.n_boxes)
        j = self.problem.judge_levels(levels, z)
        if len(j.score) < len(levels):
            raise BudgetSpent
        return levels, j

    def _starts(self, n: int) -> np.ndarray:
        elites = self.problem.grid.elite_latents()
        z = self.rng.standard_normal((n, self.z_dim)).astype(np.float32)
        if len(elites):
            from_elite = self.rng.random(n) >= self.fresh
            z[from_elite] = elites[self.rng.integers(len(elites), size=int(from_elite.sum()))]
        return z

    def _reward(self, score_before: np.ndarray) -> np.ndarray:
        # The QD gain of each step's level, not the change of the judge's score.
        return self.problem.last_gains.astype(np.float32)


def search_designer_qd(p: LatentQDProblem, seed: int, designer: DQN | None = None, epsilon: float = 0.1,
                       step_size: float = QD_DESIGNER_STEP, fresh: float = 1.0, **_) -> None:
    """The designer keeps learning (DQN updates) while it searches, on the QD reward of
    ``QDDesignerEnv``; every level of its learning counts against the budget. It starts
    from ``designer``'s weights: the CLM's designer, or one from ``train_qd_designer``."""
    trained = _require_designer(designer)
    cfg = replace(trained.cfg, seed=seed, epsilon_start=epsilon, epsilon_end=epsilon, learning_starts=64,
                  total_steps=max(p.budget, 1))
    learner = DQN(cfg, envs=QDDesignerEnv(p, cfg.num_envs, trained.envs.horizon, step_size, seed, fresh))
    learner.q.load_state_dict(trained.q.state_dict())
    learner.q_target.load_state_dict(trained.q_target.state_dict())
    try:
        while p.remaining > 0:
            learner.collect_step()
    except BudgetSpent:
        pass


def train_qd_designer(designer: DQN, G: torch.nn.Module, D: torch.nn.Module, judge: LevelJudge, evaluations: int,
                      seed: int, second: str = "wall_density", step_size: float = QD_DESIGNER_STEP,
                      chunk: int = 1000) -> DQN:
    """A new designer (``designer``'s network and settings, fresh weights) trained on the QD
    reward for ``evaluations`` G evaluations, in chunks of ``chunk`` on a fresh grid each (as
    one search's budget), epsilon falling from 1 to 0.1 over the first half.

    These evaluations count against no search's budget: the function stands for training
    the designer with this reward inside the CLM loop, where the CLM's own designer is
    trained on the judge's score (uncounted too). Trained here on the final G, it is an
    optimistic stand-in for that loop change."""
    cfg = replace(designer.cfg, seed=seed, epsilon_start=1.0, epsilon_end=0.1, exploration_fraction=0.5,
                  total_steps=max(evaluations, 1))
    p = LatentQDProblem(G, D, judge, QDGrid(second, min_novelty=judge.min_novelty), evaluations)
    learner = DQN(cfg, envs=QDDesignerEnv(p, cfg.num_envs, designer.envs.horizon, step_size, seed + 1))
    renew_at = chunk
    try:
        while True:
            learner.collect_step()
            if p.evaluations >= renew_at:  # a fresh grid: gains are worth what they are in one search
                p.grid, renew_at = QDGrid(second, min_novelty=judge.min_novelty), renew_at + chunk
    except BudgetSpent:
        pass
    return learner


SearchFn = Callable[..., None]
#: name -> search; each spends exactly ``problem.budget`` G evaluations.
SEARCHES: dict[str, SearchFn] = {
    "random": search_random,
    "cmaes": search_cmaes,
    "map_elites": search_map_elites,
    "cma_me": search_cma_me,
    "designer": search_designer,
    "designer_map_elites": search_designer_map_elites,
    "designer_qd": search_designer_qd,
}
NEEDS_DESIGNER = ("designer", "designer_map_elites", "designer_qd")


def run_qd_search(name: str, G: torch.nn.Module, D: torch.nn.Module, judge: LevelJudge, budget: int, seed: int,
                  second: str = "wall_density", designer: DQN | None = None, grid: QDGrid | None = None,
                  **options) -> LatentQDProblem:
    """Run the named search for exactly ``budget`` G evaluations; returns the problem
    (its ``grid`` has coverage and QD-score, its ``curve`` their course)."""
    if name not in SEARCHES:
        raise UserError(f"unknown QD search '{name}': valid ones are {', '.join(SEARCHES)}")
    if budget < 1:
        raise UserError(f"the budget of G evaluations must be >= 1, got {budget}")
    grid = grid if grid is not None else QDGrid(second, min_novelty=judge.min_novelty)
    problem = LatentQDProblem(G, D, judge, grid, budget)
    torch.manual_seed(seed)
    SEARCHES[name](problem, seed, designer=designer, **options)
    return problem
