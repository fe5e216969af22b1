"""The art CLM's settings (``clm run --domain art``): the run's own keys, the GAN's and the painter DQN's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from clm.agents.dqn import DQNConfig
from clm.core.errors import UserError
from clm.gan.config import AdversarialConfig


def _gan() -> AdversarialConfig:
    # The digits GAN's MLP pair; D without the minibatch-std feature, so that a canvas's realism (the
    # painter's reward) does not depend on the other canvases of its batch.
    return AdversarialConfig(z_dim=32, g_width=64, d_width=64, lr_g=2e-4, lr_d=2e-4, spectral_norm=True,
                             label_smoothing=0.1, ema=True, ema_decay=0.99, divergence_patience=300)


def _painter() -> DQNConfig:
    return DQNConfig(env_id="canvas", num_envs=16, network="conv", conv_channels=(16, 32), hidden=(128,),
                     dueling=True, double_dqn=True, n_step=3, gamma=0.95, lr=5e-4, batch_size=64,
                     buffer_size=50_000, learning_starts=1_000, train_freq=16, gradient_steps=2,
                     target_update_interval=1_000, epsilon_start=1.0, exploration_fraction=0.3, epsilon_end=0.05,
                     max_grad_norm=10.0, eval_interval=0)


@dataclass
class ArtConfig:
    """Settings of ``clm run --domain art`` (``key=value``; nested: ``player.lr=1e-3``, ``gan.g_width=128``)."""

    domain: ClassVar[str] = "art"
    #: options removed in issue 24
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "painter_fake_fraction": "D then chased the painter and its canvases ended less real (docs/results.md, "
                                 "'The CLM on art (issue 14)')",
        "schedule": "the adaptive schedule gave nothing (docs/results.md, 'Problem 3: complexity against efficiency')",
        "designer_steps": "the art domain has no designer (the painter is the agent)",
        "stuck_rounds": "a painter has no success flag to be stuck on",
    }

    data: str = "digits"  #: digits (scikit-learn's, embedded) | mnist:PATH_TO_IMAGES_IDX (labels beside)
    seed: int = 0  #: seed of everything
    device: str = "cpu"  #: cpu | cuda | auto, for all networks
    threads: int = 0  #: torch threads (0: 1)
    canvas_size: int = 16  #: the canvas is canvas_size x canvas_size pixels (the digits are resized to it)
    episode_steps: int = 4  #: the painter's actions per canvas
    n_proposals: int = 2  #: G's proposals offered at each step
    window: int = 8  #: side of a fragment's window, in pixels
    stride: int = 4  #: distance between fragment windows, in pixels
    fragments: bool = True  #: the painter may paste G's fragments (false: brush strokes only, the ablation)
    strokes: bool = True  #: the painter may paint and erase 4x4 blocks
    whole_proposals: bool = True  #: the whole canvas is a window too: the painter may take a proposal as it is
    keep_action: bool = True  #: the painter may leave the canvas as it is for a step
    rounds: int = 30  #: CLM rounds
    max_seconds: float = 0.0  #: wall-clock budget of this session of the run (0: none)
    gan_steps: int = 100  #: D and G updates per round
    gan_warmup_steps: int = 1_500  #: D and G updates before round 1 (G's first proposals are then digits, not noise)
    player_steps: int = 1_024  #: painter env steps per round (summed over canvases)
    samples_per_round: int = 64  #: G's samples from a blank canvas judged per round (the plain GAN's output)
    min_confidence: float = 0.9  #: creative: the digits classifier is at least this sure of the canvas's class
    realism_weight: float = 2.0  #: weight of the change of D's realism in each step's reward
    novelty_weight: float = 1.0  #: weight of novelty (to the training images and the archive) in the final reward
    recognisable_weight: float = 1.0  #: weight of the classifier's confidence in the final reward
    consistency_weight: float = 1.0  #: weight of G's term that keeps the painted pixels of its condition
    kept_weight: float = 0.5  #: weight of G's term toward the final canvases of the painter's creative episodes
    archive_size: int = 256  #: most creative canvases kept
    archive_feedback: bool = True  #: the archive feeds D's real batches
    archive_real_fraction: float = 0.2  #: share of D's real batches drawn from the archive
    unfinished_fake_fraction: float = 0.25  #: share of D's fake batches that are the painter's unfinished canvases (the first half of each episode, less those equal to the finished work): D learns that junk and half-works are not real, without chasing the painter's finished works
    eval_canvases: int = 128  #: canvases the greedy painter paints at each evaluation
    eval_every: int = 5  #: rounds between evaluations
    wandb: Literal["", "offline", "online"] = ""  #: Weights & Biases logging: "" off, "offline", "online"
    report: bool = True  #: write report.html at the end
    gan: AdversarialConfig = field(default_factory=_gan)  #: G (conditioned on the canvas) and D
    player: DQNConfig = field(default_factory=_painter)  #: the painter DQN

    def validate(self) -> None:
        if not (self.data == "digits" or self.data.startswith("mnist:")):
            raise UserError(f"unknown art data '{self.data}': use digits or mnist:PATH", exit_code=2)
        checks = [(self.canvas_size >= 8, "canvas_size must be >= 8"), (self.episode_steps >= 1, "episode_steps must be >= 1"),
                  (self.n_proposals >= 1, "n_proposals must be >= 1"),
                  (1 <= self.window <= self.canvas_size, "window must lie in [1, canvas_size]"),
                  (self.stride >= 1, "stride must be >= 1"), (self.fragments or self.strokes, "fragments or strokes must be on"),
                  (self.rounds >= 1 and self.player_steps >= 1 and self.gan_steps >= 0, "rounds and player_steps must be >= 1"),
                  (0 < self.min_confidence < 1, "min_confidence must lie in (0, 1)"),
                  (0 <= self.archive_real_fraction < 1, "archive_real_fraction must lie in [0, 1)"),
                  (0 <= self.unfinished_fake_fraction < 1, "unfinished_fake_fraction must lie in [0, 1)"),
                  (self.gan_warmup_steps >= 0, "gan_warmup_steps must be >= 0"),
                  (min(self.samples_per_round, self.archive_size, self.eval_canvases, self.eval_every) >= 1,
                   "samples_per_round, archive_size, eval_canvases and eval_every must be >= 1"),
                  (min(self.novelty_weight, self.recognisable_weight, self.consistency_weight, self.kept_weight,
                       self.realism_weight) >= 0,
                   "the weights must be >= 0"), (self.max_seconds >= 0, "max_seconds must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad art config: {msg}", exit_code=2)
