"""Settings of ``clm run --domain design``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from clm.agents.dqn import DQNConfig
from clm.core.errors import UserError
from clm.domains.design.corpus import parse_grid
from clm.gan.config import AdversarialConfig


def _gan() -> AdversarialConfig:
    # the design domain's own conditional U-Net G and conv D (clm.design_clm.models) at these widths
    return AdversarialConfig(z_dim=16, g_width=8, d_width=8, lr_g=1e-3, lr_d=2e-4, batch_size=32, spectral_norm=True,
                             label_smoothing=0.1, ema=True, ema_decay=0.99, divergence_patience=300)


def _editor() -> DQNConfig:
    return DQNConfig(env_id="design", num_envs=16, network="conv", conv_channels=(8, 16), hidden=(128,),
                     dueling=True, double_dqn=True, n_step=2, gamma=0.9, lr=5e-4, batch_size=64,
                     buffer_size=10_000, learning_starts=512, train_freq=16, gradient_steps=2,
                     target_update_interval=500, epsilon_start=1.0, exploration_fraction=0.4, epsilon_end=0.05,
                     max_grad_norm=10.0, eval_interval=0)


@dataclass
class DesignConfig:
    """Settings of ``clm run --domain design`` (``key=value``; nested: ``player.lr=1e-3``, ``gan.z_dim=32``)."""

    domain: ClassVar[str] = "design"

    data: str = "generated"  #: generated (SIMP designs made by the project, cached in $CLM_CACHE/design) | a corpus FILE from `clm design corpus --out`
    grid: str = "32x16"  #: NELXxNELY elements of the design grid (16x8 .. 64x32)
    volfrac: float = 0.4  #: volume fraction of every design, in (0, 1)
    corpus_train: int = 96  #: generated corpus: training load cases (SIMP designs D sees as real)
    corpus_heldout: int = 32  #: generated corpus: held-out load cases (the evaluation's)
    corpus_seed: int = 0  #: generated corpus: seed of its load cases
    simp_max_iter: int = 100  #: generated corpus: SIMP iterations at most per load case
    seed: int = 0  #: seed of everything else
    device: str = "cpu"  #: cpu | cuda | auto, for all networks
    threads: int = 0  #: torch threads (0: 1)
    episode_steps: int = 8  #: the editor's actions per design (each changed design costs one FE solve)
    block: int = 2  #: side of the square the editor adds or removes material in, in elements
    rounds: int = 20  #: CLM rounds
    max_seconds: float = 0.0  #: wall-clock budget of this session of the run (0: none)
    gan_steps: int = 30  #: D and G updates per round
    gan_warmup_steps: int = 300  #: D and G updates before round 1 (G's first proposals then look like SIMP's)
    player_steps: int = 256  #: editor env steps per round (summed over designs)
    designer_steps: int = 0  #: the design domain has no designer DQN (the editor is the agent): must stay 0
    schedule: Literal["fixed"] = "fixed"  #: updates per network per round
    samples_per_round: int = 32  #: G's proposals judged per round (each one FE solve)
    within: float = 0.1  #: creative: compliance within this fraction of the load case's SIMP design
    novelty_weight: float = 0.5  #: reward of a creative design of a topology new for its load case, at the episode's end
    connect_penalty: float = 1.0  #: reward penalty of a design whose material does not join every load to the supports
    supervised_weight: float = 5.0  #: weight of G's L1 toward the SIMP design of its load case (TopologyGAN's pixel loss)
    kept_weight: float = 0.5  #: weight of G's L1 toward creative archived designs of their load cases
    archive_size: int = 256  #: most creative designs kept
    archive_feedback: bool = True  #: the archive feeds D's real batches and G's kept term
    archive_real_fraction: float = 0.2  #: share of D's real batches drawn from the archive
    eval_cases: int = 32  #: held-out load cases the greedy editor works on at each evaluation (at most the held-out split)
    eval_every: int = 5  #: rounds between evaluations
    stuck_rounds: int = 0  #: the design domain has no success flag to be stuck on: must stay 0
    wandb: Literal["", "offline", "online"] = ""  #: Weights & Biases logging: "" off, "offline", "online"
    report: bool = True  #: write report.html at the end
    gan: AdversarialConfig = field(default_factory=_gan)  #: G (conditioned on the load case) and D (judging design and load case)
    player: DQNConfig = field(default_factory=_editor)  #: the editor DQN

    def validate(self) -> None:
        nelx, nely = parse_grid(self.grid, "grid")
        if not (self.data == "generated" or self.data):
            raise UserError("bad design config: data must be generated or a corpus file", exit_code=2)
        checks = [(0 < self.volfrac < 1, f"volfrac {self.volfrac} must lie in (0, 1)"),
                  (self.corpus_train >= 1 and self.corpus_heldout >= 1, "corpus_train and corpus_heldout must be >= 1"),
                  (self.simp_max_iter >= 1, "simp_max_iter must be >= 1"),
                  (self.episode_steps >= 1, "episode_steps must be >= 1"),
                  (self.block >= 1 and nelx % self.block == 0 and nely % self.block == 0,
                   f"block {self.block} must divide the grid {nelx}x{nely}"),
                  (self.rounds >= 1 and self.player_steps >= 1 and self.gan_steps >= 0,
                   "rounds and player_steps must be >= 1, gan_steps >= 0"),
                  (self.gan_warmup_steps >= 0, "gan_warmup_steps must be >= 0"),
                  (self.designer_steps == 0, "designer_steps must stay 0: the design domain has no designer"),
                  (self.stuck_rounds == 0, "stuck_rounds must stay 0: an editor has no success flag"),
                  (self.within > 0, "within must be > 0"),
                  (min(self.novelty_weight, self.connect_penalty, self.supervised_weight, self.kept_weight) >= 0,
                   "the weights must be >= 0"),
                  (0 <= self.archive_real_fraction < 1, "archive_real_fraction must lie in [0, 1)"),
                  (min(self.samples_per_round, self.archive_size, self.eval_cases, self.eval_every) >= 1,
                   "samples_per_round, archive_size, eval_cases and eval_every must be >= 1"),
                  (self.max_seconds >= 0, "max_seconds must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad design config: {msg}", exit_code=2)
