"""The domain interface the CLM loop runs on.

The loop (:mod:`clm.engine.loop`) owns what every domain shares: G and D
(:class:`clm.gan.steps.AdversarialPair`), the agent (a :class:`clm.agents.dqn.DQN`
acting in the domain's environment), the round schedule, logging,
checkpoints and the time shares. A domain supplies the rest, through the
methods of :class:`CLMDomain`, each named after the seed's step it serves:

========================  =============================================================
step 1: data and models   ``real_data``, ``build_gan``, ``agent_env``, ``agent_config``,
                          ``attach`` (the domain's own networks, e.g. Sokoban's designer),
                          ``start`` (e.g. the player's pre-training on demonstrations)
step 2: G generates        ``generate`` (G's samples decoded, judged, archived)
steps 3 and 5: D and G     ``gan_round`` (the agent's term in G's loss), ``d_real_batch``
                          (real data plus fed-back creative artefacts), ``other_fakes``,
                          ``g_condition``
agent -> generation        ``search`` (agent decisions that pick or edit G's outputs)
step 5: G's data -> agent  ``feed_agent``
evaluation                 ``evaluate`` (held-out figures of the agent), ``stuck`` (whether to stop)
outputs                    ``checkpoint`` / ``restore``, ``finish``; ``loaded`` (a finished run read back)
========================  =============================================================

Each domain is a package that declares itself once in the registry
(:mod:`clm.engine.registry`): :class:`clm.levels_clm.domain.SokobanCLM`
(levels: a player solving them, a designer searching G's latent space),
:class:`clm.art_clm.domain.ArtCLM` (canvases: a painter placing G's fragments)
and :class:`clm.text_clm.domain.TextCLM` (words: a writer editing with G's proposals).
The art and text domains share :class:`ProposalDomain` (one agent that
works with G's proposals, an archive, a realism bar). Adding a domain is one
class of this shape plus its data, environment, metrics and pictures under
``clm/domains/<name>``; see docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch


class CLMDomain(Protocol):
    """What the CLM loop needs from a domain (see the module docstring)."""

    #: the domain's name, as ``clm run --domain NAME`` takes it
    name: str
    #: the figures :meth:`evaluate` returns, the headline first
    evaluation_keys: tuple[str, ...]
    #: whether the agent's episodes end in success or not (a level solved); without one the loop
    #: logs no training success rate and the run is never stuck
    success_flag: bool

    def real_data(self) -> torch.Tensor:
        """D's real data: the training split, encoded as G outputs it (N, C, H, W)."""

    def build_gan(self, shape: tuple[int, ...], device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
        """G and D for data of ``shape``."""

    def agent_env(self, gan) -> Any:
        """The agent's Gymnasium vector env (``gan``: the AdversarialPair, whose sampler proposes)."""

    def agent_config(self) -> Any:
        """The agent's DQNConfig for this run."""

    def attach(self, gan, agent, device: torch.device) -> None:
        """Build the domain's own parts that need G, D or the agent."""

    def start(self, agent, timer) -> dict[str, float]:
        """Before the first round of a fresh run (e.g. pre-training); the figures to log at round 0."""

    def generate(self, gan, agent, rng: np.random.Generator, rnd: int) -> dict[str, float]:
        """Step 2: G's samples of this round, judged and archived; returns the row's figures."""

    def d_real_batch(self, real_x: torch.Tensor, n: int) -> torch.Tensor:
        """Step 3: one real batch for D (the corpus, with fed-back creative artefacts)."""

    def other_fakes(self, n: int) -> torch.Tensor | None:
        """Artefacts D should also learn are not real, in place of some of a
        batch of ``n`` G samples (the agent's works; None: G's only)."""

    def g_condition(self, n: int, device: torch.device) -> torch.Tensor | None:
        """G's conditions for a batch of fakes (None: an unconditional G)."""

    def gan_round(self, agent, real_x: torch.Tensor) -> tuple[Callable | None, dict[str, float]]:
        """Before a round's D and G updates: fix the round's fed-back real
        data; return the agent's term in G's loss, ``f(fake)`` (or
        None), and the figures to log."""

    def search(self, gan, rnd: int, timer) -> dict[str, float]:
        """Agent decisions -> data generation (a search of G's outputs); returns the row's figures."""

    def feed_agent(self, agent, timer) -> dict[str, float]:
        """Step 5: G's verified or creative data joins the agent's training data."""

    def evaluate(self, agent) -> dict[str, float]:
        """The agent's held-out figures (the first is the headline, e.g. ``player_solve_rate``)."""

    def stuck(self, rnd: int, train_success_rate: float, headline: float | None) -> str | None:
        """After round ``rnd``: why the run must stop as ``agent_stuck`` (None: go on)."""

    def round_figures(self) -> dict[str, float]:
        """Archive and coverage figures logged every round."""

    def progress(self) -> dict[str, float]:
        """Two or three figures for the progress line."""

    def checkpoint(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The domain's own networks' weights and the rest of its state as
        plain data, for the run's checkpoint; ``state["exact"]``: whether all
        of it reads back exactly."""

    def restore(self, weights: dict[str, torch.Tensor], state: dict, where: str) -> bool:
        """Restore :meth:`checkpoint`'s output; returns whether the resume is exact."""

    def finish(self, run_dir: Path, gan, status: str) -> dict[str, Any]:
        """Write the domain's outputs (artefacts, grids) and return its summary figures."""

    def loaded(self, gan) -> None:
        """A finished run's G and D (``gan.sampler``, ``gan.D``) were read back for
        generation (:func:`clm.engine.runs.load_domain_run`): set what depends on them."""


#: every method and attribute of :class:`CLMDomain`: the registry refuses a domain class without one
REQUIRED_MEMBERS = tuple(sorted({*CLMDomain.__annotations__,
                                 *(k for k, v in vars(CLMDomain).items() if callable(v) and not k.startswith("_"))}))


class ProposalDomain:
    """What the art and text domains share: one agent that edits an artefact
    with G's proposals (so its choices are the search, and G's data reaches
    it as the proposals), a realism bar set from D on a fixed set of real
    data, an archive of creative artefacts, and a G-evaluation count.

    A subclass sets ``cfg`` (with ``player``, ``rounds``, ``player_steps``,
    ``seed``), ``device``, ``archive`` and ``g_evaluations``, and defines
    ``median_real_realism``."""

    def agent_config(self):
        cfg = self.cfg
        return replace(cfg.player, total_steps=cfg.rounds * cfg.player_steps, seed=cfg.seed, device=str(self.device))

    success_flag = False  # an artefact has no "solved": the loop logs no training success rate

    def attach(self, gan, agent, device: torch.device) -> None:
        self.gan = gan

    def loaded(self, gan) -> None:
        self.gan = gan
        self.realism_bar = self.median_real_realism()

    def stuck(self, rnd: int, train_success_rate: float, headline: float | None) -> str | None:
        return None  # no success flag to be stuck on

    def start(self, agent, timer) -> dict[str, float]:
        # the realism bar of the first round's rewards: the median real artefact's, under the warmed-up D
        self.realism_bar = self.median_real_realism()
        return {"realism_bar": self.realism_bar}

    def search(self, gan, rnd: int, timer) -> dict[str, float]:
        return {}  # the agent's choices among G's proposals are the search; it runs in the agent's steps

    def feed_agent(self, agent, timer) -> dict[str, float]:
        return {}  # G's data reaches the agent as the proposals it works with

    def round_figures(self) -> dict[str, float]:
        return {"archive_size": len(self.archive), "g_evaluations": self.g_evaluations}

    def progress(self) -> dict[str, float]:
        return {"archive": len(self.archive)}
