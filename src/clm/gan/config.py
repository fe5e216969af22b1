"""The GAN's settings, in the layers its users need.

- :class:`AdversarialConfig`: what :class:`clm.gan.steps.AdversarialPair`
  reads (loss, optimisers, stabilisers, batch) plus G's noise size and the
  networks' widths: every GAN of the project has these.
- :class:`CategoricalGanConfig`: a G whose output is one-hot cells (words,
  levels): how it samples them.
- :class:`TileGanConfig`: the tile models of levels and of ``clm gan train``:
  the architecture family and its blocks, D's minibatch-std feature.

A CLM domain nests the one whose keys it uses (art: adversarial; text:
categorical; levels: tile), so it has no key it ignores;
:class:`clm.gan.train.GanConfig` (``clm gan train``) extends the tile config
with its data, schedule, evaluation and levels-decoding keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from clm.core.errors import UserError
from clm.gan.augment import parse_policy


@dataclass
class AdversarialConfig:
    """G and D's training: losses, optimisers, stabilisers, widths (``gan.KEY=...``)."""

    #: options removed in issue 24 after docs/results.md and docs/benchmarks.md measured them as giving nothing
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "pattern_matching": "it did not lower the decoded tile-pattern KL (docs/benchmarks.md, the GAN on levels)",
        "instance_noise": "it did not change D's robustness (docs/results.md, 'Robustness: the player and D under "
                          "perturbations')",
    }
    #: keys of ``clm gan train`` that a CLM run sets elsewhere (its section ``gan`` has none of them)
    KEY_HINTS: ClassVar[dict[str, str]] = {
        "steps": "A CLM run sets G and D's updates with gan_steps (per round) and rounds",
        "data": "A CLM run's data is its top-level data key (or --data)",
        "seed": "The top-level seed seeds every network of a CLM run",
        "device": "Use the top-level device: one for every network",
        "threads": "Use the top-level threads",
    }

    batch_size: int = 128  # real and fake samples per D step
    z_dim: int = 32  # latent size
    g_width: int = 128  # G's base channel count (MLP hidden = 4x)
    d_width: int = 64  # D's base channel count (MLP hidden = 4x)
    loss: Literal["ns", "hinge", "wgan-gp"] = "ns"  # ns: the seed's non-saturating loss
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight
    d_steps: int = 1  # D updates per G update (WGAN-GP wants 5)
    lr_g: float = 2e-4  # Adam learning rate of G
    lr_d: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta1 (DCGAN's 0.5; WGAN-GP uses 0.0)
    beta2: float = 0.999  # Adam beta2
    spectral_norm: bool = False  # spectral normalisation on D's layers
    ema: bool = True  # sample from an exponential moving average of G
    ema_decay: float = 0.999  # EMA decay per G step
    feature_matching: float = 0.0  # weight of the feature-matching term in G's loss (0: off)
    label_smoothing: float = 0.1  # one-sided: real target = 1 - this (ns loss only); 0.1 took the digits' FD-clf ratio from 1.52 to 1.38
    diffaug: str = ""  # DiffAugment policies, comma list of color,translation,cutout,flip ('' off)
    amp: bool = False  # bfloat16 autocast of G's and D's forward passes, on CPU and CUDA (losses and Adam stay float32)
    divergence_patience: int = 1000  # stop when D's loss stays below divergence_loss this many steps
    divergence_loss: float = 1e-3  # D loss counted as "collapsed to zero" (ns and hinge)

    def validate(self) -> None:
        checks = [(self.batch_size >= 2, "batch_size must be >= 2"), (self.z_dim >= 1, "z_dim must be >= 1"),
                  (self.d_steps >= 1, "d_steps must be >= 1"), (min(self.g_width, self.d_width) >= 2, "widths must be >= 2"),
                  (0.0 <= self.label_smoothing < 0.5, "label_smoothing must lie in [0, 0.5)"),
                  (0.0 < self.ema_decay < 1.0, "ema_decay must lie in (0, 1)"),
                  (self.lr_g > 0 and self.lr_d > 0, "learning rates must be > 0")]
        for ok, msg in checks:
            if not ok:
                raise UserError(f"bad config: {msg}")
        try:
            parse_policy(self.diffaug)
        except ValueError as e:
            raise UserError(f"bad config: {e}")


@dataclass
class CategoricalGanConfig(AdversarialConfig):
    """A G of one-hot cells: how it samples them."""

    gumbel_tau: float = 1.0  # Gumbel-softmax temperature of the tile generator (levels)
    tile_sample: Literal["gumbel", "argmax"] = "gumbel"  # levels: G's one-hot from a Gumbel draw or its argmax (both straight-through)

    def validate(self) -> None:
        super().validate()
        if not self.gumbel_tau > 0:
            raise UserError("bad config: gumbel_tau must be > 0")


@dataclass
class TileGanConfig(CategoricalGanConfig):
    """The tile models (levels, ``clm gan train``): architecture, blocks, D's minibatch-std feature."""

    arch: Literal["dcgan", "mlp", "resconv"] = "mlp"  # MLP (default: 8x8 too small for DCGAN depth, 4x faster on CPU), DCGAN conv, or resconv: residual 3x3 convs at the grid's own resolution (levels: cells modelled jointly)
    res_blocks: int = 3  # resconv: residual blocks in G (D has one fewer, at least 1)
    refine_blocks: int = 0  # residual 3x3 conv blocks that refine G's output map at the grid's resolution, any arch (0: off)
    minibatch_std: bool = True  # minibatch standard-deviation channel in D (anti mode collapse)

    def validate(self) -> None:
        super().validate()
        if self.res_blocks < 1 or self.refine_blocks < 0:
            raise UserError("bad config: res_blocks must be >= 1 and refine_blocks >= 0")
