"""One discriminator step and one generator step, as building blocks.

``AdversarialPair`` holds G, D, their optimisers and the EMA copy, and runs
the seed's updates: D on real against generated data, then G on D's
feedback, with an optional extra term in G's loss (the CLM adds the player's
difficulty steering there). The CLM drives these step by step, between its
other networks' updates.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from clm.gan import losses
from clm.gan.augment import diff_augment, parse_policy
from clm.gan.models import EMA


class AdversarialPair:
    """G and D with their optimisers; ``cfg`` is a :class:`clm.gan.train.GanConfig`."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, cfg):
        self.G, self.D, self.cfg = G, D, cfg
        self.ema = EMA(G, cfg.ema_decay) if cfg.ema else None
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.aug = parse_policy(cfg.diffaug)
        self.real_target = 1.0 - cfg.label_smoothing if cfg.loss == "ns" else 1.0
        self.collapsed_for = 0

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.G

    def d_step(self, real: torch.Tensor, cond_real=None, cond_fake=None) -> dict[str, float]:
        """One D update on a real batch against as many fresh G samples."""
        cfg = self.cfg
        z = torch.randn(len(real), cfg.z_dim, device=real.device)
        with torch.no_grad():
            fake = self.G(z, cond_fake)
        real_logits, _ = self.D(diff_augment(real, self.aug), cond_real)
        fake_logits, _ = self.D(diff_augment(fake, self.aug), cond_fake)
        loss = losses.d_loss(cfg.loss, real_logits.float(), fake_logits.float(), self.real_target)
        if cfg.loss == "wgan-gp":
            critic = lambda x: self.D(diff_augment(x, self.aug), cond_real)[0]  # noqa: E731
            loss = loss + cfg.gp_weight * losses.gradient_penalty(critic, real, fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        value = loss.item()
        self.collapsed_for = self.collapsed_for + 1 if value < cfg.divergence_loss else 0
        with torch.no_grad():
            accuracy = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()).item()
        return {"d_loss": value, "d_accuracy": accuracy}

    def g_step(self, batch_size: int, device: torch.device, cond=None,
               extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
               real_for_features: torch.Tensor | None = None) -> dict[str, float]:
        """One G update: fool D, plus ``extra_loss(fake)`` when given."""
        cfg = self.cfg
        z = torch.randn(batch_size, cfg.z_dim, device=device)
        fake = self.G(z, cond)
        fake_logits, fake_feats = self.D(diff_augment(fake, self.aug), cond)
        loss = losses.g_loss(cfg.loss, fake_logits.float())
        out = {"g_loss": loss.item()}
        if cfg.feature_matching > 0 and real_for_features is not None:
            with torch.no_grad():
                _, real_feats = self.D(diff_augment(real_for_features, self.aug), cond)
            loss = loss + cfg.feature_matching * losses.feature_matching_loss(real_feats.float(), fake_feats.float())
        if extra_loss is not None:
            extra = extra_loss(fake)
            out["g_extra_loss"] = extra.item()
            loss = loss + extra
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(self.G)
        return out

    def diverged(self, row: dict[str, float]) -> str | None:
        """A message when the last losses show divergence, else None."""
        if not all(math.isfinite(v) for v in row.values()):
            return f"GAN losses are not finite ({row}); lower lr_d/lr_g or try spectral_norm=true or loss=hinge"
        if self.cfg.loss != "wgan-gp" and self.collapsed_for >= self.cfg.divergence_patience:
            return (f"D's loss stayed below {self.cfg.divergence_loss:g} for {self.collapsed_for} steps: D rejects "
                    "every sample and G gets no signal; try diffaug=translation,cutout or spectral_norm=true")
        return None

    def state_dict(self) -> dict:
        return {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "collapsed_for": self.collapsed_for, "ema_updates": self.ema.updates if self.ema else 0}

    def load_state_dict(self, state: dict) -> None:
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.collapsed_for = state["collapsed_for"]
        if self.ema is not None:
            self.ema.updates = state["ema_updates"]

    def weights(self) -> dict[str, torch.Tensor]:
        w = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        w.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        if self.ema is not None:
            w.update({f"G_ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        return w

    def load_weights(self, w: dict[str, torch.Tensor]) -> None:
        sub = lambda p: {k[len(p):]: v for k, v in w.items() if k.startswith(p)}  # noqa: E731
        self.G.load_state_dict(sub("G."))
        self.D.load_state_dict(sub("D."))
        if self.ema is not None:
            self.ema.model.load_state_dict(sub("G_ema."))
