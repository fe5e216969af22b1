"""The text CLM's settings (``clm run --domain text``): the run's own keys, the GAN's and the writer DQN's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from clm.agents.dqn import DQNConfig
from clm.core.errors import UserError
from clm.domains.text.constraints import parse_constraint
from clm.domains.text.corpus import DEFAULT_ALPHABET
from clm.gan.config import CategoricalGanConfig


def _gan() -> CategoricalGanConfig:
    # An MLP G over the (C, 1, L) one-hot word whose letters are its argmax (all randomness from z: letters
    # drawn cell by cell are independent and read as noise), and a residual conv D over letter windows. In a
    # 2,000-step probe (seed 0, 512 samples) this pair's words had fluency 0.61 and NLL 2.76 nats per symbol
    # against 0.32 / 3.79 for an MLP D with Gumbel letters. D has no minibatch-std feature, so that a word's
    # realism (the writer's reward) does not depend on the other words of its batch.
    return CategoricalGanConfig(z_dim=32, g_width=128, d_width=128, lr_g=2e-4, lr_d=5e-4, spectral_norm=True,
                                label_smoothing=0.1, ema=True, ema_decay=0.99, tile_sample="argmax",
                                divergence_patience=300)


def _writer() -> DQNConfig:
    return DQNConfig(env_id="words", num_envs=16, network="mlp", hidden=(256, 256), dueling=True, double_dqn=True,
                     n_step=3, gamma=0.95, lr=5e-4, batch_size=64, buffer_size=20_000, learning_starts=1_000,
                     train_freq=16, gradient_steps=2, target_update_interval=1_000, epsilon_start=1.0,
                     exploration_fraction=0.3, epsilon_end=0.05, max_grad_norm=10.0, eval_interval=0)


@dataclass
class TextConfig:
    """Settings of ``clm run --domain text`` (``key=value``; nested: ``player.lr=1e-3``, ``gan.g_width=256``)."""

    domain: ClassVar[str] = "text"
    #: options removed in issue 24
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "schedule": "the adaptive schedule gave nothing (docs/results.md, 'Problem 3: complexity against efficiency')",
        "designer_steps": "the text domain has no designer (the writer is the agent)",
        "stuck_rounds": "a writer has no success flag to be stuck on",
    }

    data: str = "cmudict"  #: cmudict (the CMU Pronouncing Dictionary's words, shipped in the package) | a text file of words, one per line (path:FILE or FILE)
    alphabet: str = DEFAULT_ALPHABET  #: the letters words are made of (a corpus word with another character is an error)
    min_len: int = 3  #: shortest word, in letters (corpus words outside min_len..max_len are left out of cmudict, an error in a user's file)
    max_len: int = 10  #: longest word, in letters (G's output length)
    lowercase: bool = True  #: lower-case a user's word list before checking it against the alphabet
    held_out_fraction: float = 0.1  #: share of the corpus held out (metrics' floors and the held-out judge)
    split_seed: int = 0  #: seed of the train/held-out split (fixed, so every run splits alike)
    d_arch: Literal["conv", "mlp"] = "conv"  #: D: residual 1-D convs over letter windows (conv) or an MLP over the whole word
    constraint: str = ""  #: what the writer's words must meet, e.g. "length=6-8,start=s" or "rhymes=night" ("" none)
    seed: int = 0  #: seed of everything
    device: str = "cpu"  #: cpu | cuda | auto, for all networks
    threads: int = 0  #: torch threads (0: 1)
    episode_steps: int = 4  #: the writer's edits per word at most
    n_proposals: int = 2  #: G's proposals offered at each edit
    rounds: int = 30  #: CLM rounds
    max_seconds: float = 0.0  #: wall-clock budget of this session of the run (0: none)
    gan_steps: int = 100  #: D and G updates per round
    gan_warmup_steps: int = 2_000  #: D and G updates before round 1 (G's first proposals are then word-like)
    player_steps: int = 1_024  #: writer env steps per round (summed over words)
    samples_per_round: int = 128  #: G's samples from the empty word judged per round (the plain GAN's output)
    min_fluency: float = 0.5  #: creative: fluency at least this (1: as likely per letter as the median real word)
    realism_weight: float = 1.0  #: weight of the change of D's realism in each edit's reward
    fluency_weight: float = 1.0  #: weight of the change of fluency in each edit's reward
    novelty_weight: float = 1.0  #: weight of a new word (in no split of the corpus) in the final reward, times its fluency
    constraint_weight: float = 2.0  #: weight of meeting the constraint in the final reward, times its fluency
    consistency_weight: float = 0.5  #: weight of G's term that keeps the letters of the word it continues
    kept_weight: float = 0.5  #: weight of G's term toward the writer's creative words (from the words on the way)
    archive_size: int = 512  #: most creative words kept
    archive_feedback: bool = True  #: the archive feeds D's real batches
    archive_real_fraction: float = 0.2  #: share of D's real batches drawn from the archive
    constraint_real_fraction: float = 0.2  #: with a constraint: share of D's real batches drawn from the training words that meet it (G then proposes such words, which the writer can only take if G makes them; 0: off)
    unfinished_fake_fraction: float = 0.25  #: share of D's fake batches that are the writer's junk on the way (words shorter than min_len, the empty one too, or below half the fluency bar): D learns that junk is not a word, which it had never seen (a random writer's junk scored 0.51 to a D trained on G's samples only)
    eval_words: int = 256  #: words the greedy writer writes at each evaluation
    eval_every: int = 5  #: rounds between evaluations
    wandb: Literal["", "offline", "online"] = ""  #: Weights & Biases logging: "" off, "offline", "online"
    report: bool = True  #: write report.html at the end
    gan: CategoricalGanConfig = field(default_factory=_gan)  #: G (conditioned on the word) and D
    player: DQNConfig = field(default_factory=_writer)  #: the writer DQN

    def validate(self) -> None:
        checks = [(1 <= self.min_len <= self.max_len, "need 1 <= min_len <= max_len"),
                  (self.max_len >= 2, "max_len must be >= 2"),
                  (0 < self.held_out_fraction < 0.5, "held_out_fraction must lie in (0, 0.5)"),
                  (self.episode_steps >= 1 and self.n_proposals >= 1, "episode_steps and n_proposals must be >= 1"),
                  (self.rounds >= 1 and self.player_steps >= 1 and self.gan_steps >= 0, "rounds and player_steps must be >= 1"),
                  (0 < self.min_fluency <= 1, "min_fluency must lie in (0, 1]"),
                  (0 <= self.archive_real_fraction < 1, "archive_real_fraction must lie in [0, 1)"),
                  (0 <= self.unfinished_fake_fraction < 1, "unfinished_fake_fraction must lie in [0, 1)"),
                  (0 <= self.constraint_real_fraction < 1 and self.archive_real_fraction + self.constraint_real_fraction < 1,
                   "constraint_real_fraction must lie in [0, 1), and with archive_real_fraction below 1"),
                  (self.gan_warmup_steps >= 0, "gan_warmup_steps must be >= 0"),
                  (min(self.samples_per_round, self.archive_size, self.eval_words, self.eval_every) >= 1,
                   "samples_per_round, archive_size, eval_words and eval_every must be >= 1"),
                  (min(self.realism_weight, self.fluency_weight, self.novelty_weight, self.constraint_weight,
                       self.consistency_weight, self.kept_weight) >= 0, "the weights must be >= 0"),
                  (self.max_seconds >= 0, "max_seconds must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad text config: {msg}", exit_code=2)
        if self.gan.diffaug:
            raise UserError(f"gan.diffaug={self.gan.diffaug!r}: DiffAugment's image policies do not apply to words; "
                            "drop the key", exit_code=2)
        parse_constraint(self.constraint, self.alphabet, self.min_len, self.max_len)
