"""The design domain's environment: an agent edits a black-and-white design, the FE solver judges each edit.

An episode takes one load case (drawn from the env's cases) and a start
design (``propose``: G's proposal in the CLM; a random design at the volume
without it), solved once. Each of ``steps`` actions then either

- **adds** material in a ``block`` x ``block`` square at a position, and to keep
  the volume removes as many material elements elsewhere, those with the
  lowest strain energy in the last solve (the least used material);
- **removes** the material of a square, and adds as many void elements
  elsewhere, those with the highest strain energy density at unit stiffness
  in the last solve (where material would carry most: SIMP's sensitivity);
- or **keeps** the design (no solve).

Every changed design is solved (one FE solve, the budget the benchmarks
count). The reward is the change of the score
``-log10(c / c_ref)`` (clipped to [-10, 0.5]) ``- connect_penalty`` when the
material does not join every load to the supports as one piece, where
``c_ref`` is the compliance of the load case's SIMP design (a design whose
load path is broken has a compliance many orders above SIMP's, as the void's
stiffness is 1e-9: the wide clip keeps the steps toward joining it
rewarded, an order of magnitude a point); at the last step
``novelty_weight`` is added when the design is creative: connected, within
``within`` (10 %) of SIMP's compliance, of another topology (holes,
members) than SIMP's design and than the ones ``is_novel`` already knows.
The volume is kept by construction.

Observation ``(7, nely, nelx)`` float32: the design, the load case's four
condition planes (:func:`condition_planes`), the strain energy of the last
solve (normalised, fourth root), and ``t / steps``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from clm.core.errors import UserError
from clm.domains.design.fe import FESolver
from clm.domains.design.loadcase import LoadCase
from clm.domains.design.topology import describe, node_elements
from clm.domains.single_env import SingleEnvView

N_CHANNELS = 7


def condition_planes(lc: LoadCase) -> np.ndarray:
    """The load case as four (nely, nelx) planes (TopologyGAN-style conditioning): x and y force
    (spread over the elements around each load node) and x and y fixity (of the elements around fixed nodes)."""
    planes = np.zeros((4, lc.nely, lc.nelx), np.float32)
    for p in lc.loads:
        around = node_elements(p.ix, p.iy, lc.nelx, lc.nely)
        for e in around:
            planes[0][e] += p.fx / len(around)
            planes[1][e] += p.fy / len(around)
    for dof in lc.fixed_dofs():
        n = int(dof) // 2
        for e in node_elements(n // (lc.nely + 1), n % (lc.nely + 1), lc.nelx, lc.nely):
            planes[2 + int(dof) % 2][e] = 1.0
    return planes


def random_design(lc: LoadCase, rng: np.random.Generator) -> np.ndarray:
    """Material on ``round(volfrac n)`` random elements (the start without a proposer)."""
    n = lc.nelx * lc.nely
    flat = np.zeros(n, np.float32)
    flat[rng.choice(n, int(round(lc.volfrac * n)), replace=False)] = 1.0
    return flat.reshape(lc.nely, lc.nelx)


def at_volume(density: np.ndarray, volfrac: float) -> np.ndarray:
    """The ``round(volfrac n)`` densest elements as material: any proposal made black and white at the volume."""
    flat = np.asarray(density, np.float64).ravel()
    out = np.zeros(flat.size, np.float32)
    out[np.argsort(-flat, kind="stable")[: int(round(volfrac * flat.size))]] = 1.0
    return out.reshape(np.shape(density))


Propose = Callable[[list, np.random.Generator], np.ndarray]  # (load cases, rng) -> (n, nely, nelx) densities


class DesignVecEnv(gym.vector.VectorEnv):
    """``num_envs`` designs edited at once (same-step autoreset). ``cases`` and
    ``references`` (SIMP's compliance) and ``simp_keys`` (SIMP's topology) are
    parallel lists; an episode's case is drawn uniformly from them."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, cases: list[LoadCase], references, simp_keys, propose: Propose | None = None,
                 steps: int = 8, block: int = 2, seed: int = 0, novelty_weight: float = 0.5,
                 connect_penalty: float = 1.0, within: float = 0.1, is_novel: Callable | None = None):
        if num_envs < 1 or steps < 1 or not cases:
            raise UserError(f"a design env needs num_envs >= 1, steps >= 1 and load cases (got {num_envs}, {steps}, "
                            f"{len(cases)})", exit_code=2)
        grids = {(lc.nelx, lc.nely) for lc in cases}
        if len(grids) != 1:
            raise UserError(f"a design env's load cases must share one grid, got {sorted(grids)}", exit_code=2)
        self.nelx, self.nely = grids.pop()
        if block < 1 or self.nelx % block or self.nely % block:
            raise UserError(f"block {block} must divide the grid {self.nelx}x{self.nely}", exit_code=2)
        self.num_envs, self.cases, self.steps, self.block = num_envs, list(cases), steps, block
        self.references = np.asarray(references, np.float64)
        self.simp_keys = [tuple(k) for k in simp_keys]
        self.propose, self.is_novel = propose, is_novel
        self.novelty_weight, self.connect_penalty, self.within = novelty_weight, connect_penalty, within
        self.solver = FESolver(self.nelx, self.nely)
        self.planes = [condition_planes(lc) for lc in self.cases]
        self.nbx, self.nby = self.nelx // block, self.nely // block
        self.n_blocks = self.nbx * self.nby
        self.n_actions = 2 * self.n_blocks + 1  # add at each block, remove at each block, keep
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (N_CHANNELS, self.nely, self.nelx), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.finished: deque = deque(maxlen=512)
        self._started = False

    # -- judging -------------------------------------------------------------------------------------
    def judge(self, design: np.ndarray, case: int) -> dict:
        """One FE solve and the topology of ``design`` for case ``case``: compliance, ratio to SIMP's, score."""
        lc = self.cases[case]
        sol = self.solver.solve(design, lc)
        topo = describe(design, lc)
        ratio = sol.compliance / self.references[case]
        score = float(np.clip(-np.log10(ratio), -10.0, 0.5)) - self.connect_penalty * (not topo.connected)
        creative = bool(topo.connected and ratio <= 1 + self.within and topo.key != self.simp_keys[case])
        return {"compliance": sol.compliance, "ratio": float(ratio), "energy": sol.element_energy, "topology": topo,
                "score": score, "creative": creative}

    def _energy_plane(self, energy: np.ndarray) -> np.ndarray:
        energy = np.maximum(energy, 0.0)  # round-off can leave a void element a hair below 0
        return (energy / max(float(energy.max()), 1e-30)) ** 0.25

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, N_CHANNELS, self.nely, self.nelx), np.float32)
        obs[:, 0] = self._design
        obs[:, 1:5] = np.stack([self.planes[c] for c in self._case])
        obs[:, 5] = self._energy_view
        obs[:, 6] = (self._t / self.steps)[:, None, None]
        return np.clip(obs, -1.0, 1.0)

    def _start(self, idx: np.ndarray, cases: np.ndarray | None = None) -> None:
        self._case[idx] = self.rng.integers(len(self.cases), size=len(idx)) if cases is None else cases
        cases = [self.cases[c] for c in self._case[idx]]
        if self.propose is not None:
            raw = np.asarray(self.propose(cases, self.rng), np.float64)
            starts = [at_volume(d, lc.volfrac) for d, lc in zip(raw, cases)]
        else:
            starts = [random_design(lc, self.rng) for lc in cases]
        for i, d in zip(idx, starts):
            self._design[i] = d
            j = self.judge(d, int(self._case[i]))
            self._set_judged(i, j)
            self._first[i] = d
            self._first_ratio[i] = j["ratio"]
            self._first_connected[i] = j["topology"].connected
            self._solves[i] = 1
        self._t[idx] = 0
        self._return[idx] = 0.0

    def _set_judged(self, i: int, j: dict) -> None:
        self._energy[i] = j["energy"]
        self._energy_view[i] = self._energy_plane(j["energy"])
        self._score[i], self._ratio[i], self._creative[i] = j["score"], j["ratio"], j["creative"]
        self._key[i] = j["topology"].key
        self._connected[i] = j["topology"].connected

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Fresh episodes; ``options={"cases": [...]}`` fixes the first episode's load case of each env."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n, h, w = self.num_envs, self.nely, self.nelx
        self._design = np.zeros((n, h, w), np.float32)
        self._first = np.zeros((n, h, w), np.float32)
        self._energy = np.zeros((n, h, w))
        self._energy_view = np.zeros((n, h, w), np.float32)
        self._case = np.zeros(n, np.int64)
        self._t = np.zeros(n, np.int64)
        self._score, self._ratio, self._first_ratio = np.zeros(n), np.zeros(n), np.zeros(n)
        self._return = np.zeros(n)
        self._creative, self._connected, self._first_connected = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        self._key = np.zeros((n, 2), np.int64)
        self._solves = np.zeros(n, np.int64)
        cases = None if not options or "cases" not in options else np.asarray(options["cases"], np.int64)
        if cases is not None and (cases.shape != (n,) or cases.min() < 0 or cases.max() >= len(self.cases)):
            raise ValueError(f"options['cases'] must be {n} indices into the env's {len(self.cases)} load cases")
        self._start(np.arange(n), cases)
        self._started = True
        return self._obs(), {}

    # -- acting ----------------------------------------------------------------------------------------
    def edit(self, design: np.ndarray, energy: np.ndarray, action: int) -> np.ndarray | None:
        """The design after ``action`` (a copy), or None when the action changes nothing (keep, or a block
        that is already all material or all void)."""
        if action == 2 * self.n_blocks:
            return None
        out = design.copy()
        add = action < self.n_blocks
        by, bx = divmod(int(action) % self.n_blocks, self.nbx)
        in_block = np.zeros_like(design, dtype=bool)
        in_block[by * self.block:(by + 1) * self.block, bx * self.block:(bx + 1) * self.block] = True
        changed = in_block & ((design < 0.5) if add else (design >= 0.5))
        k = int(changed.sum())
        if k == 0:
            return None
        out[changed] = 1.0 if add else 0.0
        # keep the volume: take as many elements of the other kind, outside the block, by the last solve's energy
        other = ~in_block & ((design >= 0.5) if add else (design < 0.5))
        cand = np.flatnonzero(other.ravel())
        e = energy.ravel()[cand]
        order = np.argsort(e if add else -e, kind="stable")[:k]
        out.ravel()[cand[order]] = 0.0 if add else 1.0
        return out

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 \
                or a.max() >= self.n_actions:
            raise ValueError(f"actions must be {self.num_envs} integers in 0..{self.n_actions - 1}, got {actions!r}")
        reward = np.zeros(self.num_envs)
        for i in range(self.num_envs):
            new = self.edit(self._design[i], self._energy[i], int(a[i]))
            if new is not None:
                j = self.judge(new, int(self._case[i]))
                reward[i] = j["score"] - self._score[i]
                self._design[i] = new
                self._set_judged(i, j)
                self._solves[i] += 1
        self._t += 1
        truncated = self._t >= self.steps
        idx = np.flatnonzero(truncated)
        for i in idx:
            novel = bool(self._creative[i]) and (self.is_novel is None or
                                                 self.is_novel(int(self._case[i]), tuple(self._key[i])))
            reward[i] += self.novelty_weight * novel
        self._return += reward
        obs = self._obs()
        infos = {}
        if len(idx):
            infos = {"final_obs": obs.copy(), "_final_obs": truncated.copy()}
            for i in idx:
                self.finished.append({"case": int(self._case[i]), "first": self._first[i].copy(),
                                      "design": self._design[i].copy(), "first_ratio": float(self._first_ratio[i]),
                                      "ratio": float(self._ratio[i]), "connected": bool(self._connected[i]),
                                      "first_connected": bool(self._first_connected[i]),
                                      "creative": bool(self._creative[i]), "key": tuple(int(v) for v in self._key[i]),
                                      "solves": int(self._solves[i]), "return": float(self._return[i])})
            self._start(idx)
            obs = self._obs()
        return obs, reward.astype(np.float32), np.zeros(self.num_envs, bool), truncated, infos

    def status(self) -> dict[str, np.ndarray]:
        """Each env's current design as judged by its last solve: ratio to SIMP's compliance, connected,
        topology key (holes, members), FE solves so far in the episode (copies)."""
        return {"design": self._design.copy(), "ratio": self._ratio.copy(), "connected": self._connected.copy(),
                "key": self._key.copy(), "solves": self._solves.copy()}

    def pop_finished(self) -> list[dict]:
        out = list(self.finished)
        self.finished.clear()
        return out

    # -- checkpoints -----------------------------------------------------------------------------------
    _ARRAYS = {"_design": np.float32, "_first": np.float32, "_energy": np.float64, "_energy_view": np.float32,
               "_case": np.int64, "_t": np.int64, "_score": np.float64, "_ratio": np.float64,
               "_first_ratio": np.float64, "_return": np.float64, "_creative": bool, "_connected": bool, "_first_connected": bool,
               "_key": np.int64, "_solves": np.int64}

    def state_dict(self) -> dict:
        """Plain data (arrays, numbers): the designs in play, their last solve, counters, the finished
        episodes not yet collected, the generator. ``propose`` and ``is_novel`` are the caller's."""
        st = {"rng": self.rng.bit_generator.state, "started": self._started, "fe_solves": self.solver.solves,
              "finished": [dict(f, key=list(f["key"])) for f in self.finished]}
        if self._started:
            st.update({k.lstrip("_"): getattr(self, k).copy() for k in self._ARRAYS})
        return st

    def load_state_dict(self, state: dict) -> None:
        if state["started"]:
            shape = np.shape(state["design"])
            if shape != (self.num_envs, self.nely, self.nelx):
                raise UserError(f"the saved design env's designs have shape {shape}; this config's are "
                                f"{(self.num_envs, self.nely, self.nelx)}: resume with the run's own config", exit_code=2)
            for k, dtype in self._ARRAYS.items():
                setattr(self, k, np.array(state[k.lstrip("_")], dtype))
        self.rng.bit_generator.state = state["rng"]
        self.solver.solves = int(state["fe_solves"])
        self.finished = deque([dict(f, key=tuple(f["key"])) for f in state["finished"]], maxlen=512)
        self._started = bool(state["started"])


class DesignEnv(SingleEnvView):
    """One design: the plain ``gymnasium.Env`` view of :class:`DesignVecEnv` (num_envs=1), for the env checker."""

    def __init__(self, cases: list[LoadCase], references, simp_keys, propose: Propose | None = None, steps: int = 8,
                 block: int = 2, seed: int = 0, **kw):
        super().__init__(DesignVecEnv(1, cases, references, simp_keys, propose, steps, block, seed, **kw))
