"""The CLM on automated design: G proposes a structure for a load case, an editor DQN improves it, the
finite-element solver judges, SIMP is the bar.

One implementation of :class:`clm.engine.domain.CLMDomain`:

- **real data**: SIMP's black-and-white designs of the training load cases
  (``clm design corpus``), each with its load case's four condition planes;
- **G** (conditional, TopologyGAN-style) proposes a design for a load case,
  **D** judges how real a design looks for its load case;
- **G -> agent**: every editor episode starts from G's proposal for its load
  case (made black and white at the volume fraction);
- **agent**: the editor adds or removes material in blocks, volume kept,
  rewarded by compliance relative to SIMP's, connectivity and novelty of
  topology (:mod:`clm.domains.design.env`);
- **creative -> D and G**: creative designs (connected, within ``within`` of
  SIMP's compliance, of a topology, holes and members, other than SIMP's and
  new for the load case) go to an archive that feeds D's real batches and
  G's kept term (an L1 toward them for their load cases), beside G's
  supervised L1 toward SIMP's design of its load case.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.core.errors import UserError
from clm.domains.design.corpus import cached_corpus, default_cache_dir, parse_grid, read_corpus
from clm.domains.design.env import DesignVecEnv, at_volume, condition_planes
from clm.domains.design.topology import describe
from clm.design_clm.config import DesignConfig
from clm.design_clm.models import DesignDiscriminator, DesignGenerator
from clm.design_clm.outputs import write_outputs
from clm.engine.parts import mixed_real_batch


class DesignArchive:
    """Creative designs, one per (load case, topology): the lowest compliance ratio kept."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.records: list[dict] = []  # case, key, ratio, source, round
        self.designs: list[np.ndarray] = []

    def add(self, case: int, design: np.ndarray, ratio: float, key: tuple, source: str, rnd: int) -> bool:
        for i, r in enumerate(self.records):
            if r["case"] == case and tuple(r["key"]) == tuple(key):
                if ratio < r["ratio"]:
                    self.records[i] = {**r, "ratio": ratio, "source": source, "round": rnd}
                    self.designs[i] = design.astype(np.uint8)
                return False
        self.records.append({"case": case, "key": list(key), "ratio": float(ratio), "source": source, "round": rnd})
        self.designs.append(design.astype(np.uint8))
        if len(self.records) > self.capacity:
            drop = int(np.argmax([r["ratio"] for r in self.records]))
            del self.records[drop], self.designs[drop]
        return True

    def keys_of(self, case: int) -> set[tuple]:
        return {tuple(r["key"]) for r in self.records if r["case"] == case}

    def __len__(self) -> int:
        return len(self.records)


class DesignCLM:
    """The CLM's design domain (``clm run --domain design``)."""

    name = "design"
    success_flag = False
    evaluation_keys = ("design_within10_fraction", "design_median_ratio", "design_creative_fraction",
                       "g_within10_fraction", "g_median_ratio", "design_solves_mean")

    def __init__(self, cfg: DesignConfig, device: torch.device, run_dir: Path | None = None):
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        self.nelx, self.nely = parse_grid(cfg.grid, "grid")
        if cfg.data == "generated":
            self.corpus, self.corpus_path, _ = cached_corpus(default_cache_dir(), cfg.corpus_train, cfg.corpus_heldout,
                                                             self.nelx, self.nely, cfg.volfrac, cfg.corpus_seed,
                                                             cfg.simp_max_iter)
        else:
            self.corpus_path = Path(cfg.data).expanduser()
            self.corpus = read_corpus(self.corpus_path, self.nelx, self.nely)
            if abs(self.corpus.header["volfrac"] - cfg.volfrac) > 1e-9:
                raise UserError(f"{self.corpus_path}: header volfrac is {self.corpus.header['volfrac']}, but this run's "
                                f"volfrac is {cfg.volfrac}: set volfrac={self.corpus.header['volfrac']}", exit_code=2)
        c = self.corpus
        self.cases = c.load_cases
        self.planes = np.stack([condition_planes(lc) for lc in self.cases])
        self.simp_keys = [describe(d, lc).key for d, lc in zip(c.design, self.cases)]
        self.train_idx, self.held_idx = c.split(False), c.split(True)
        if len(self.train_idx) == 0 or len(self.held_idx) == 0:
            raise UserError(f"{self.corpus_path}: the corpus needs training and held-out load cases", exit_code=2)
        self.encoded = torch.from_numpy(np.concatenate([c.design[:, None].astype(np.float32) * 2 - 1, self.planes], 1))
        self.archive = DesignArchive(cfg.archive_size)
        self.g_evaluations = 0
        self.feedback_x: torch.Tensor | None = None
        self.eval_episodes: list[dict] = []

    # -- G as the editor's proposer ------------------------------------------------------------------
    def g_densities(self, cases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """G's densities in [0, 1] for load cases (indices into the corpus), noise from ``rng``."""
        return self.g_densities_for(self.planes[cases], rng)

    @torch.no_grad()
    def g_densities_for(self, planes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """G's densities in [0, 1] for condition planes (n, 4, nely, nelx) of any load cases of the grid."""
        n = len(planes)
        z = torch.from_numpy(rng.standard_normal((n, self.cfg.gan.z_dim)).astype(np.float32)).to(self.device)
        out = self.gan.sampler(z, torch.from_numpy(np.asarray(planes, np.float32).reshape(n, -1)).to(self.device))
        self.g_evaluations += n
        return (out[:, 0].float().cpu().numpy() + 1) / 2

    def make_env(self, num_envs: int, case_idx: np.ndarray, seed: int) -> DesignVecEnv:
        cfg = self.cfg
        index = {lc.key(): int(i) for i, lc in zip(case_idx, [self.cases[i] for i in case_idx])}
        propose = lambda cases, rng: self.g_densities(np.array([index[lc.key()] for lc in cases]), rng)  # noqa: E731
        return DesignVecEnv(num_envs, [self.cases[i] for i in case_idx], self.corpus.compliance[case_idx],
                            [self.simp_keys[i] for i in case_idx], propose, cfg.episode_steps, cfg.block, seed,
                            cfg.novelty_weight, cfg.connect_penalty, cfg.within,
                            is_novel=lambda j, key: key not in self.archive.keys_of(int(case_idx[j])))

    # -- step 1 ----------------------------------------------------------------------------------------
    def real_data(self) -> torch.Tensor:
        return self.encoded[self.train_idx].to(self.device)

    def build_gan(self, shape, device):
        g = self.cfg.gan
        return (DesignGenerator(self.nely, self.nelx, g.z_dim, g.g_width).to(device),
                DesignDiscriminator(self.nely, self.nelx, g.d_width, g.spectral_norm).to(device))

    def agent_env(self, gan) -> DesignVecEnv:
        self.gan = gan
        self.env = self.make_env(self.cfg.player.num_envs, self.train_idx, self.cfg.seed + 3)
        return self.env

    def agent_config(self):
        cfg = self.cfg
        return replace(cfg.player, total_steps=cfg.rounds * cfg.player_steps, seed=cfg.seed, device=str(self.device))

    def attach(self, gan, agent, device) -> None:
        self.gan = gan

    def loaded(self, gan) -> None:
        self.gan = gan

    def start(self, agent, timer) -> dict[str, float]:
        return {}

    def stuck(self, rnd, train_success_rate, headline) -> str | None:
        return None

    # -- step 2: G's proposals and the editor's finished designs, judged and archived ------------------
    def generate(self, gan, agent, rng, rnd) -> dict[str, float]:
        cfg = self.cfg
        cases = rng.choice(self.train_idx, cfg.samples_per_round)
        dens = self.g_densities(cases, rng)
        ratios, ok = [], []
        for case, d in zip(cases, dens):
            design = at_volume(d, cfg.volfrac)
            j = self.env.judge(design, int(np.flatnonzero(self.train_idx == case)[0]))
            ratios.append(j["ratio"])
            ok.append(j["topology"].connected and j["ratio"] <= 1 + cfg.within)
            if j["creative"]:
                self.archive.add(int(case), design, j["ratio"], j["topology"].key, "generator", rnd)
        row = {"g_proposal_median_ratio": float(np.median(ratios)), "g_proposal_within10_fraction": float(np.mean(ok))}
        episodes = self.env.pop_finished()
        if episodes:
            for e in episodes:
                if e["creative"]:
                    self.archive.add(int(self.train_idx[e["case"]]), e["design"], e["ratio"], e["key"], "editor", rnd)
            row.update(editor_creative_fraction=float(np.mean([e["creative"] for e in episodes])),
                       editor_median_ratio=float(np.median([e["ratio"] for e in episodes])),
                       editor_gain=float(np.median([e["first_ratio"] / e["ratio"] for e in episodes])))
        return row

    # -- steps 3 and 5 -----------------------------------------------------------------------------------
    def _archive_encoded(self) -> torch.Tensor:
        cases = np.array([r["case"] for r in self.archive.records])
        designs = np.stack(self.archive.designs).astype(np.float32)[:, None] * 2 - 1
        return torch.from_numpy(np.concatenate([designs, self.planes[cases]], 1))

    def gan_round(self, agent, real_x) -> tuple[Any, dict[str, float]]:
        self.feedback_x = (self._archive_encoded().to(self.device)
                           if self.cfg.archive_feedback and len(self.archive) else None)
        return self._g_term, {}

    def d_real_batch(self, real_x, n):
        return mixed_real_batch(real_x, self.feedback_x, self.cfg.archive_real_fraction, n)

    def other_fakes(self, n: int):
        return None

    def g_condition(self, n: int, device) -> torch.Tensor:
        """Training load cases (their SIMP designs G's supervised target), and, a quarter of the batch once
        the archive has designs, archived creative designs' load cases (those designs G's kept target)."""
        k = n // 4 if self.feedback_x is not None and self.cfg.kept_weight > 0 else 0
        cases = self.train_idx[torch.randint(len(self.train_idx), (n - k,)).numpy()]
        target = self.encoded[cases, 0]
        is_kept = torch.zeros(n, dtype=torch.bool)
        if k:
            pick = torch.randint(len(self.archive), (k,)).numpy()
            cases = np.concatenate([cases, [self.archive.records[i]["case"] for i in pick]])
            target = torch.cat([target, self.feedback_x[torch.from_numpy(pick), 0].cpu()])
            is_kept[n - k:] = True
        self._target, self._is_kept = target.to(device), is_kept.to(device)
        return torch.from_numpy(self.planes[cases].reshape(n, -1)).to(device)

    def _g_term(self, fake: torch.Tensor) -> torch.Tensor:
        err = (fake[:, 0] - self._target).abs().mean((1, 2))
        kept = self._is_kept.float()
        return (self.cfg.supervised_weight * (err * (1 - kept)).sum() + self.cfg.kept_weight * (err * kept).sum()) \
            / len(err)

    def search(self, gan, rnd, timer) -> dict[str, float]:
        return {}  # the editor's edits of G's proposals are the search; they run in the agent's steps

    def feed_agent(self, agent, timer) -> dict[str, float]:
        return {}  # G's data reaches the editor as the designs it starts from

    # -- evaluation --------------------------------------------------------------------------------------
    def edit_cases(self, policy, case_idx: np.ndarray, seed: int, steps: int | None = None) -> list[dict]:
        """One episode per load case (indices into the corpus) from G's proposal, actions by ``policy``."""
        env = self.make_env(len(case_idx), case_idx, seed)
        if steps is not None:
            env.steps = steps
        before = self.g_evaluations
        obs, _ = env.reset(options={"cases": np.arange(len(case_idx))})
        for _ in range(env.steps):
            obs, *_ = env.step(policy(obs))
        self.g_evaluations = before  # evaluations are not the run's G budget
        episodes = sorted(env.pop_finished()[: len(case_idx)], key=lambda e: e["case"])
        for e in episodes:
            e["corpus_case"] = int(case_idx[e["case"]])
        return episodes

    def evaluate(self, agent) -> dict[str, float]:
        cases = self.held_idx[: self.cfg.eval_cases]
        eps = self.edit_cases(agent.greedy_actions, cases, self.cfg.seed + 500)
        self.eval_episodes = eps
        within = self.cfg.within
        return {"design_within10_fraction": float(np.mean([e["connected"] and e["ratio"] <= 1 + within for e in eps])),
                "design_median_ratio": float(np.median([e["ratio"] for e in eps])),
                "design_creative_fraction": float(np.mean([e["creative"] for e in eps])),
                "g_within10_fraction": float(np.mean([e["first_connected"] and e["first_ratio"] <= 1 + within
                                                      for e in eps])),
                "g_median_ratio": float(np.median([e["first_ratio"] for e in eps])),
                "design_solves_mean": float(np.mean([e["solves"] for e in eps]))}

    def round_figures(self) -> dict[str, float]:
        return {"archive_size": len(self.archive), "g_evaluations": self.g_evaluations, "fe_solves": self.env.solver.solves}

    def progress(self) -> dict[str, float]:
        return {"archive": len(self.archive)}

    # -- checkpoint ----------------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict, dict]:
        st = {"archive_records": self.archive.records,
              "archive_designs": np.stack(self.archive.designs) if self.archive.designs else None,
              "g_evaluations": self.g_evaluations, "exact": True}
        return {}, st

    def restore(self, weights, st, where: str) -> bool:
        self.archive.records = [dict(r) for r in st["archive_records"]]
        designs = st["archive_designs"]
        self.archive.designs = [] if designs is None else [np.asarray(d, np.uint8) for d in designs]
        self.g_evaluations = int(st["g_evaluations"])
        return True

    # -- outputs -------------------------------------------------------------------------------------------
    def finish(self, run_dir: Path, gan, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"creative_designs": len(self.archive), "g_evaluations": self.g_evaluations,
                               "corpus": str(self.corpus_path)}
        if status == "gan_diverged" or run_dir is None:
            return out
        write_outputs(self, run_dir)
        return out
