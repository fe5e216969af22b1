"""QD searches over G's latent space at an exact budget of G evaluations,
measured on one :class:`~clm.levels_clm.qd_grid.QDGrid`.

The searches (registered in the one table of levels searches,
``clm.levels_clm.searches.SEARCHES``, with the edit searches of
``clm.levels_clm.edit_qd``) all judge their levels through
one ``LatentQDProblem``, which decodes z with G, judges the levels with the
run's ``LevelJudge``, files them in the grid and stops at the budget, so
every search is measured by the same grid at the same cost:

- ``random``: z ~ N(0, I);
- ``cmaes``: CMA-ES maximising the judge's score (the ``cma`` package,
  restarted every 40 generations), a single-objective optimiser, not a QD
  method;
- ``map_elites``: MAP-Elites with pyribs' GridArchive, GaussianEmitter and
  Scheduler;
- ``cma_me``: CMA-ME, pyribs' EvolutionStrategyEmitter with the two-stage
  improvement ranker (Fontaine et al. 2020), as in the illumination of GAN
  latent spaces for game levels;
- ``designer``: a CLM run's trained designer DQN acting epsilon-greedily in
  a latent-space env of its own that judges through the problem;
(The designer-QD variants, MAP-Elites asking the designer for proposals and
a designer rewarded by its QD gains, measured as no better than the
designer alone and were removed; docs/results.md keeps their figures.)

The grid here is the measuring instrument, identical for every search; the
ribs searches keep their own GridArchive (same cells) as their algorithm's
state, which is what pyribs is for. ``clm generate --search NAME`` takes the
same names: it runs the search with an ``on_judged`` callback that keeps the
levels it asks for, and stops the problem once it has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Callable

import cma
import numpy as np
import torch
from ribs.archives import GridArchive
from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter
from ribs.schedulers import Scheduler

from clm.agents.dqn import DQN
from clm.core.errors import UserError
from clm.domains.levels import Level
from clm.levels_clm.couplings import Judgement, LevelJudge
from clm.levels_clm.designer import LatentDesignerEnv, decode_latents
from clm.levels_clm.qd_grid import (  # noqa: F401 - part of this module's API
    QDGrid,
    descriptor_values,
)
from clm.levels_clm.searches import SEARCHES, LevelSearch, get_search, register_search


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
    #: called with (levels, judgement) after each judged batch; a true answer stops the search
    #: (``clm generate`` keeps the levels it asks for and stops once it has them)
    on_judged: Callable[[list, Judgement], bool] | None = None
    stopped: bool = False  #: no budget remains (``on_judged`` said stop)

    @property
    def remaining(self) -> int:
        return 0 if self.stopped else self.budget - self.evaluations

    @property
    def z_dim(self) -> int:
        return int(self.G.z_dim)

    @property
    def n_boxes(self) -> int | None:
        return self.judge.n_boxes

    def judge_levels(self, levels: list[Level]) -> Judgement:
        """Judge the first ``remaining`` levels of a batch; returns their judgement (maybe shorter)."""
        levels = levels[: max(self.remaining, 0)]
        if not levels:
            return Judgement(**{f.name: np.zeros(0) for f in fields(Judgement)})
        j = self.judge.judge(self.D, levels)
        self.evaluations += len(levels)
        self.grid.offer(levels, j)
        self.curve.append((self.evaluations, self.grid.coverage, self.grid.qd_score))
        if self.on_judged is not None and self.on_judged(levels, j):
            self.stopped = True
        return j

    def evaluate(self, z: np.ndarray) -> tuple[list[Level], Judgement]:
        """Decode latent vectors with G and judge them (at most the remaining budget)."""
        z = np.asarray(z, dtype=np.float32)[: max(self.remaining, 0)]
        levels = decode_latents(self.G, z, self.n_boxes) if len(z) else []
        return levels, self.judge_levels(levels)

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
def search_random(p: LatentQDProblem, seed: int, batch: int = 64, **_) -> None:
    """z ~ N(0, I), judged in batches of ``batch``."""
    rng = np.random.default_rng(seed)
    while p.remaining > 0:
        p.evaluate(rng.standard_normal((min(batch, p.remaining), p.z_dim)).astype(np.float32))


def search_cmaes(p: LatentQDProblem, seed: int, popsize: int = 16, restart_every: int = 40, **_) -> None:
    """CMA-ES maximising the judge's score over z; restarts from a fresh mean every
    ``restart_every`` generations so that it keeps finding new levels."""
    rng = np.random.default_rng(seed)
    while p.remaining > 0:
        es = cma.CMAEvolutionStrategy(rng.standard_normal(p.z_dim), 1.0,
                                      {"popsize": popsize, "seed": int(rng.integers(1, 2**31)), "verbose": -9})
        for _ in range(restart_every):
            if p.remaining <= 0:
                break
            z = np.asarray(es.ask(), dtype=np.float32)
            _, j = p.evaluate(z)
            if len(j.score) == popsize:
                es.tell(list(z.astype(np.float64)), list(-j.score))


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
    """The trained designer DQN acting epsilon-greedily in a latent-space env of the
    search's own (the designer's horizon and step size), every level judged through the problem."""
    walks = _require_designer(designer).envs
    env = LatentDesignerEnv(p.G, p.D, p.as_judge(strict=True), None, num_envs=walks.num_envs,
                            horizon=walks.horizon, step_size=walks.step_size, seed=seed)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = env.reset(seed=seed)
        while p.remaining > 0:
            explore = rng.random(len(obs)) < epsilon
            actions = np.where(explore, rng.integers(env.single_action_space.n, size=len(obs)),
                               designer.greedy_actions(obs))
            obs, *_ = env.step(actions)
    except BudgetSpent:
        pass


def _require_designer(designer):
    if designer is None:
        raise UserError("this search needs a CLM run's designer DQN (the run was made with designer_search=false?)")
    return designer


for _search in (LevelSearch("random", search_random, "latent"),
                LevelSearch("cmaes", search_cmaes, "latent"),
                LevelSearch("map_elites", search_map_elites, "latent"),
                LevelSearch("cma_me", search_cma_me, "latent"),
                LevelSearch("designer", search_designer, "latent", needs_designer=True)):
    register_search(_search)


def run_qd_search(name: str, G: torch.nn.Module, D: torch.nn.Module, judge: LevelJudge, budget: int, seed: int,
                  second: str = "wall_density", designer: DQN | None = None, grid: QDGrid | None = None,
                  on_judged: Callable[[list, Judgement], bool] | None = None, **options) -> LatentQDProblem:
    """Run the named search (any of the one table, ``SEARCHES``: latent or edit) for exactly
    ``budget`` G evaluations (fewer if ``on_judged`` stops the problem), judged by ``judge`` as
    given (a caller wraps it in a cache by layout where the search's entry asks for one);
    returns the problem (its ``grid`` has coverage and QD-score, its ``curve`` their course)."""
    if name not in SEARCHES:
        raise UserError(f"unknown QD search '{name}': valid ones are {', '.join(SEARCHES)}")
    if budget < 1:
        raise UserError(f"the budget of G evaluations must be >= 1, got {budget}")
    grid = grid if grid is not None else QDGrid(second, min_novelty=judge.min_novelty)
    problem = LatentQDProblem(G, D, judge, grid, budget, on_judged=on_judged)
    torch.manual_seed(seed)
    get_search(name).fn(problem, seed, designer=designer, **options)
    return problem
