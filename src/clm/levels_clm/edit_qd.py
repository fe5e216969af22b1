"""Illuminating the QD grid by editing levels (issue 25): random-edit
MAP-Elites (ACCEL's random mutations) and a learned, goal-conditioned edit
agent (a DQN on :class:`clm.domains.levels.edit_env.LevelEditVecEnv`, as
controllable PCGRL), both measured like the latent searches of
``clm.levels_clm.qd``: every level judged goes through one ``LatentQDProblem``
(its budget, its grid).

- ``CachedJudge``: the run's ``LevelJudge`` with its figures cached by layout
  (D, the corpus and the archive stay fixed while it is used), so a layout
  met again is not solved again (D's realism is the one of the batch the
  layout was first judged in: a minibatch-std D varies it by ~1e-4 across
  batches). Every level asked about still counts as one
  evaluation: the budget counts judged levels, edits included.
- ``RandomEditEmitter``: a pyribs emitter whose ask() takes elites of the
  archive and applies 1..``max_edits`` random edits to each
  (``edit_env.random_edits``); the first ask returns G's samples.
- ``AgentEditEmitter``: the same, but each elite gets a target cell (an empty
  cell of the archive near its own) and the edit agent's policy makes up to
  ``horizon`` edits toward it.
- ``train_edit_agent``: trains the agent by running that search with learning
  on fresh grids (an episode's reward: the change of ``goal_score`` from its
  start to its edited level, plus the edited level's QD gain in the training
  grid, minus the env's penalties for refused edits); its evaluations are
  counted and returned.
- ``random_edits`` is registered in the one table of levels searches
  (``clm.levels_clm.searches``), which ``clm generate --search`` and ``clm
  serve`` read; ``run_qd_search`` runs it (the agent is not saved by a run yet).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from ribs.archives import GridArchive
from ribs.emitters import EmitterBase
from ribs.schedulers import Scheduler

from clm.agents.dqn import DQN, DQNConfig
from clm.domains.levels import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.edit_env import (N_KINDS, LevelEditVecEnv, apply_edits, edit_mask, edit_observation,
                                         random_edits)
from clm.levels_clm.couplings import Judgement, LevelJudge
from clm.levels_clm.designer import decode_latents
from clm.levels_clm.qd import INELIGIBLE_PENALTY, LatentQDProblem
from clm.levels_clm.qd_grid import QDGrid
from clm.levels_clm.searches import LevelSearch, register_search


class CachedJudge:
    """``judge.judge(D, levels)`` with each layout's figures kept: a layout judged
    before is not solved or scored again. ``evaluations`` counts every level asked
    about; ``misses`` the levels actually judged (solver calls)."""

    def __init__(self, judge: LevelJudge):
        self.inner = judge
        self.cache: dict[bytes, tuple] = {}
        self.evaluations = 0
        self.misses = 0

    @property
    def n_boxes(self):
        return self.inner.n_boxes

    @property
    def min_novelty(self):
        return self.inner.min_novelty

    def judge(self, D: torch.nn.Module, levels: list[Level]) -> Judgement:
        self.evaluations += len(levels)
        keys = [lv.key() for lv in levels]
        new = {}
        for k, lv in zip(keys, levels):
            if k not in self.cache and k not in new:
                new[k] = lv
        if new:
            j = self.inner.judge(D, list(new.values()))
            self.misses += len(new)
            names = [f.name for f in fields(Judgement)]
            for i, k in enumerate(new):
                self.cache[k] = tuple(getattr(j, n)[i] for n in names)
        rows = [self.cache[k] for k in keys]
        cols = list(zip(*rows)) if rows else [[] for _ in fields(Judgement)]
        return Judgement(*(np.asarray(c) for c in cols))


def level_cells(grid: QDGrid, levels: list[Level], j: Judgement) -> np.ndarray:
    """(N, 2) grid cell of each judged level (unplayable levels have pushes -1: bin 0)."""
    return grid.cells(grid.descriptors(levels, j))


def goal_score(grid: QDGrid, levels: list[Level], j: Judgement, targets: np.ndarray) -> np.ndarray:
    """The edit agent's score of levels for their target cells: 0 unless the level
    may enter the grid (playable, novel); else 1 + 2 exp(-d / 2) + realism / 2, d the
    L1 distance in bins from the level's cell to its target."""
    d = np.abs(level_cells(grid, levels, j) - np.asarray(targets)).sum(1)
    return grid.eligible(j) * (1.0 + 2.0 * np.exp(-0.5 * d) + 0.5 * np.asarray(j.realism))


def near_empty_targets(rng: np.random.Generator, cells: np.ndarray, empty: np.ndarray, radius: int = 3,
                       tries: int = 12) -> np.ndarray:
    """A target for each start cell: an empty cell of the grid (``empty``, bins
    shaped bool) within ``radius`` bins of it (first of ``tries`` random draws),
    else the last draw (a filled cell: the agent may still improve its elite)."""
    bins = np.asarray(empty.shape)
    n = len(cells)
    out = np.clip(cells + rng.integers(-radius, radius + 1, (n, 2)), 0, bins - 1)
    found = empty[out[:, 0], out[:, 1]]
    for _ in range(tries - 1):
        cand = np.clip(cells + rng.integers(-radius, radius + 1, (n, 2)), 0, bins - 1)
        take = ~found & empty[cand[:, 0], cand[:, 1]]
        out[take] = cand[take]
        found |= take
    return out


class MaskedEditDQN(DQN):
    """The project's DQN acting only through edits whose cell conditions hold
    (``edit_mask`` read from the observation's tile planes): exploration draws
    uniformly among them and the greedy action is the best-valued among them,
    so no step is wasted on an edit the env would refuse."""

    max_boxes: int = 4

    def _mask(self, obs: np.ndarray) -> np.ndarray:
        tiles = np.asarray(obs)[:, :7].argmax(1).astype(np.int8)
        return edit_mask(tiles, self.max_boxes)

    @torch.no_grad()
    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        q = self.q(torch.as_tensor(obs, device=self.device).float()).cpu().numpy()
        return np.where(self._mask(obs), q, -np.inf).argmax(1)

    @torch.no_grad()
    def td_targets(self, b, target_next: torch.Tensor) -> torch.Tensor:
        """The TD target's max (or Double DQN's argmax) over the next state's allowed
        edits only: the other actions are never taken, so their values are never
        trained and would be noise in the target."""
        allowed = torch.as_tensor(self._mask(b.next_obs.cpu().numpy()), device=target_next.device)
        if self.cfg.double_dqn:
            online = self.online_q_values(b.next_obs).masked_fill(~allowed, -torch.inf)
            value = target_next.gather(1, online.argmax(dim=1, keepdim=True)).squeeze(1)
        else:
            value = target_next.masked_fill(~allowed, -torch.inf).max(dim=1).values
        return b.returns + b.discounts * value

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        mask = self._mask(obs)
        explore = self.rng.random(len(obs)) < epsilon
        random_actions = np.argmax(self.rng.random(mask.shape) * mask, axis=1)
        if explore.all():
            return random_actions
        return np.where(explore, random_actions, self.greedy_actions(obs))


def edit_agent_config(seed: int, total_steps: int, num_envs: int = 16) -> DQNConfig:
    """The edit agent's DQN: a small conv over the grid and the target planes, double DQN.
    Small on purpose: on the shared 2-core machine a (32, 32)-channel, 256-wide dueling
    net cost 140 ms per update under load."""
    return DQNConfig(env_id="level-edit", seed=seed, num_envs=num_envs, total_steps=total_steps, network="conv",
                     conv_channels=(16, 16), hidden=(128,), dueling=False, double_dqn=True, n_step=1, gamma=0.9,
                     lr=1e-3, batch_size=32, buffer_size=50_000, learning_starts=512, train_freq=num_envs,
                     gradient_steps=2, target_update_interval=512, epsilon_start=1.0, epsilon_end=0.1,
                     exploration_fraction=0.4, eval_interval=0, checkpoint_interval=0, log_interval=10**9)


# -- the searches -----------------------------------------------------------------------------
def _tiles_to_solutions(tiles: np.ndarray) -> np.ndarray:
    return tiles.reshape(len(tiles), -1).astype(np.float64)


class RandomEditEmitter(EmitterBase):
    """ACCEL's mutation as a pyribs emitter: ``batch`` elites, each with
    1..``max_edits`` random edits (uniform count, uniform among allowed edits).
    The first ask returns ``initial`` (G's samples) as they are."""

    def __init__(self, archive, shape: tuple[int, int], initial: np.ndarray, batch: int = 32, max_edits: int = 4,
                 max_boxes: int = 4, seed: int = 0):
        super().__init__(archive, solution_dim=archive.solution_dim, bounds=None, lower_bounds=None,
                         upper_bounds=None)
        self.shape, self.batch, self.max_edits, self.max_boxes = shape, batch, max_edits, max_boxes
        self.rng = np.random.default_rng(seed)
        self._initial: np.ndarray | None = np.asarray(initial, np.int8)

    @property
    def batch_size(self) -> int:
        return self.batch

    def _elite_tiles(self) -> np.ndarray:
        sol = self.archive.sample_elites(self.batch)["solution"]
        return np.rint(sol).astype(np.int8).reshape(-1, *self.shape)

    def ask(self) -> np.ndarray:
        if self._initial is not None or self.archive.empty:
            tiles, self._initial = self._initial, None
            return _tiles_to_solutions(tiles)
        tiles = self._elite_tiles()
        n_edits = self.rng.integers(1, self.max_edits + 1, len(tiles))
        return _tiles_to_solutions(random_edits(tiles, n_edits, self.rng, self.max_boxes))

    def tell(self, solution, objective, measures, add_info, **fields) -> None:
        pass


class AgentEditEmitter(RandomEditEmitter):
    """The edit agent as a pyribs emitter: each elite gets a target (an empty cell
    near its own, ``near_empty_targets``) and the agent's epsilon-greedy policy
    edits it up to ``max_edits`` times (or until it stops)."""

    def __init__(self, archive, shape, initial, agent: DQN, bins: tuple[int, int], batch: int = 32,
                 max_edits: int = 4, max_boxes: int = 4, epsilon: float = 0.05, radius: int = 3, seed: int = 0,
                 temperature: float = 0.0):
        super().__init__(archive, shape, initial, batch, max_edits, max_boxes, seed)
        self.agent, self.bins, self.epsilon, self.radius = agent, bins, epsilon, radius
        self.temperature = temperature

    def ask(self) -> np.ndarray:
        if self._initial is not None or self.archive.empty:
            return super().ask()
        elites = self.archive.sample_elites(self.batch)
        tiles = np.rint(elites["solution"]).astype(np.int8).reshape(-1, *self.shape)
        cells = self.archive.int_to_grid_index(elites["index"])
        empty = np.ones(self.bins, bool)
        filled = self.archive.int_to_grid_index(self.archive.data("index"))
        empty[filled[:, 0], filled[:, 1]] = False
        targets = near_empty_targets(self.rng, cells, empty, self.radius)
        return _tiles_to_solutions(rollout(self.agent, tiles, targets, self.bins, self.max_edits, self.epsilon,
                                           self.max_boxes, self.temperature))


def policy_actions(agent: DQN, obs: np.ndarray, epsilon: float, temperature: float = 0.0,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """The agent's edits: epsilon-greedy (``temperature`` 0), or drawn from the softmax
    of its Q-values over the allowed edits at ``temperature`` (a stochastic policy that
    keeps the edits varied and still prefers the ones it values)."""
    if temperature <= 0:
        return agent.act(obs, epsilon)
    rng = rng if rng is not None else agent.rng
    with torch.no_grad():
        q = agent.q(torch.as_tensor(obs, device=agent.device).float()).cpu().numpy().astype(np.float64)
    tiles = obs[:, :7].argmax(1).astype(np.int8)
    allowed = edit_mask(tiles, getattr(agent, "max_boxes", 4))
    logits = np.where(allowed, q / temperature, -np.inf)
    logits -= logits.max(1, keepdims=True)
    # Gumbel-max: one draw per row from softmax(logits)
    return np.argmax(logits - np.log(-np.log(rng.random(logits.shape))), axis=1)


def rollout(agent: DQN, tiles: np.ndarray, targets: np.ndarray, bins: tuple[int, int], horizon: int,
            epsilon: float, max_boxes: int, temperature: float = 0.0) -> np.ndarray:
    """The agent's edits of ``tiles`` toward ``targets`` until it stops or makes ``horizon`` edits."""
    tiles = np.asarray(tiles, np.int8).copy()
    live = np.ones(len(tiles), bool)
    stop = N_KINDS * tiles.shape[1] * tiles.shape[2]
    for t in range(horizon):
        idx = np.flatnonzero(live)
        if not len(idx):
            break
        obs = edit_observation(tiles[idx], targets[idx], np.full(len(idx), t), horizon, bins)
        actions = policy_actions(agent, obs, epsilon, temperature)
        tiles[idx], _ = apply_edits(tiles[idx], actions, max_boxes)
        live[idx[actions == stop]] = False
    return tiles


def _g_samples(p: LatentQDProblem, n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, p.z_dim)).astype(np.float32)
    return levels_to_tiles(decode_latents(p.G, z, p.n_boxes))


def run_edit_map_elites(p: LatentQDProblem, emitter_fn, seed: int, initial: int = 64) -> None:
    """MAP-Elites over levels (pyribs' GridArchive, the grid's cells; solutions are
    the flattened tile grids) with the emitter ``emitter_fn(archive, shape, initial
    tiles)``, starting from ``initial`` G samples; ask, judge through ``p``, tell,
    until the budget is spent."""
    rng = np.random.default_rng(seed)
    start = _g_samples(p, initial, rng)
    shape = start.shape[1:]
    archive = GridArchive(solution_dim=int(np.prod(shape)), dims=p.grid.bins, ranges=p.grid.ranges, seed=seed)
    scheduler = Scheduler(archive, [emitter_fn(archive, shape, start)])
    while p.remaining > 0:
        sol = scheduler.ask()
        levels = tiles_to_levels(np.rint(sol).astype(np.int8).reshape(-1, *shape))
        j = p.judge_levels(levels)
        if len(j.score) < len(levels):
            break
        objective = np.where(p.grid.eligible(j), j.score, j.score - INELIGIBLE_PENALTY)
        scheduler.tell(objective, p.grid.descriptors(levels, j))


def search_random_edits(p: LatentQDProblem, seed: int, batch: int = 32, max_edits: int = 4, max_boxes: int = 4,
                        **_) -> None:
    """Random-edit MAP-Elites (ACCEL's mutations)."""
    run_edit_map_elites(p, lambda a, s, init: RandomEditEmitter(a, s, init, batch, max_edits, max_boxes, seed + 1),
                        seed)


def search_edit_agent(p: LatentQDProblem, seed: int, agent: DQN | None = None, batch: int = 32, max_edits: int = 4,
                      max_boxes: int = 4, epsilon: float = 0.2, temperature: float = 0.0, **_) -> None:
    """MAP-Elites whose mutation is the trained edit agent, asked for empty cells
    (epsilon-greedy, or its softmax policy with ``temperature`` > 0)."""
    if agent is None:
        raise ValueError("search_edit_agent needs a trained edit agent (train_edit_agent)")
    agent.rng = np.random.default_rng(seed + 2)
    run_edit_map_elites(p, lambda a, s, init: AgentEditEmitter(a, s, init, agent, p.grid.bins, batch, max_edits,
                                                               max_boxes, epsilon, seed=seed + 1,
                                                               temperature=temperature), seed)


#: the edit searches ``clm generate --search`` takes, in the one table of levels searches (the edit
#: agent needs a trained agent, which a run does not save yet: see docs/results.md). Random edits may
#: make levels of up to 4 boxes (search_random_edits' max_boxes), whatever G decodes.
register_search(LevelSearch("random_edits", search_random_edits, "edit", caches_layouts=True, max_boxes=4))


# -- training the agent -----------------------------------------------------------------------
@dataclass
class EditTraining:
    """Where the edit agent's training episodes start and what they aim at: the
    elites of a training grid (G's samples while it is sparse), filed by every
    level the training judges; targets are empty cells near each start.
    ``evaluations`` counts every level judged (the training's cost)."""

    G: torch.nn.Module
    D: torch.nn.Module
    judge: LevelJudge | CachedJudge
    grid: QDGrid
    fresh: float = 0.25  # share of starts that are new G samples
    evaluations: int = 0
    _last: tuple | None = None  # the starts whose cells targets() just judged: their score reuses it

    def _judge(self, tiles: np.ndarray) -> tuple[list[Level], Judgement, np.ndarray]:
        levels = tiles_to_levels(tiles)
        j = self.judge.judge(self.D, levels)
        self.evaluations += len(levels)
        return levels, j, self.grid.offer(levels, j)

    def starts(self, rng: np.random.Generator, n: int) -> list[Level]:
        elites = self.grid.elites()
        z = rng.standard_normal((n, int(self.G.z_dim))).astype(np.float32)
        out = decode_latents(self.G, z, self.judge.n_boxes)
        if len(elites) >= 8:
            for i in np.flatnonzero(rng.random(n) >= self.fresh):
                out[i] = elites[int(rng.integers(len(elites)))]
        return out

    def targets(self, rng: np.random.Generator, tiles: np.ndarray) -> np.ndarray:
        levels, j, _ = self._judge(tiles)
        self._last = (np.array(tiles), levels, j)
        return near_empty_targets(rng, level_cells(self.grid, levels, j), np.isnan(self.grid.quality))

    def score(self, tiles: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The env asks for the starts' scores right after their targets (judged once
        then, no QD gain counted for a start), and for the edited levels' at the end
        of their episodes: goal score plus what they added to the grid."""
        if self._last is not None and np.array_equal(self._last[0], tiles):
            _, levels, j = self._last
            self._last = None
            return goal_score(self.grid, levels, j, targets)
        levels, j, gains = self._judge(tiles)
        return goal_score(self.grid, levels, j, targets) + gains


def train_edit_agent(G, D, judge, grid_fn, episodes: int, seed: int, max_edits: int = 4, max_boxes: int = 4,
                     chunk: int = 1000, num_envs: int = 16) -> tuple[MaskedEditDQN, int]:
    """Train the edit agent for about ``episodes`` episodes; a fresh grid
    (``grid_fn()``) every ``chunk`` judged levels, as one search's budget.
    Returns the agent and the evaluations its training spent (every level judged:
    starts and edited levels, cached layouts included)."""
    steps = episodes * (max_edits + 1)
    train = EditTraining(G, D, judge, grid_fn())
    env = LevelEditVecEnv(train.starts, num_envs, train.grid.bins, horizon=max_edits, max_boxes=max_boxes,
                          score_fn=train.score, target_fn=train.targets, seed=seed)
    agent = MaskedEditDQN(edit_agent_config(seed, steps, num_envs), envs=env)
    agent.max_boxes = max_boxes
    renew_at = chunk
    while agent.env_steps < steps:
        agent.collect_step()
        if train.evaluations >= renew_at:
            train.grid, renew_at = grid_fn(), renew_at + chunk
    return agent, train.evaluations
