"""One discriminator step and one generator step, written once.

``AdversarialPair`` holds G, D, their Adam optimisers and the EMA copy of G,
and runs the seed's updates: D on real against generated data, then G on
D's feedback. Both ``clm gan train`` (:func:`clm.gan.train.train`) and the
CLM loop (:mod:`clm.engine.loop`) drive it step by step; the CLM adds an
extra term to G's loss (the player's difficulty steering).

Every stabiliser of :class:`clm.gan.train.GanConfig` lives here: class
conditions (real ones for the real batch, drawn ones for the fakes),
DiffAugment, one-sided label smoothing, the WGAN-GP penalty, feature
matching, bfloat16 autocast (CPU or CUDA), the EMA (with its warm-up, see
:class:`clm.gan.models.EMA`) and the "D won outright" divergence check.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Callable

import torch

from clm.core import distributed
from clm.core.checkpoint import strip_prefix
from clm.core.runtime import use_amp
from clm.gan import losses
from clm.gan.augment import diff_augment, parse_policy
from clm.gan.models import EMA


class AdversarialPair:
    """G and D with their optimisers; ``cfg`` is a :class:`clm.gan.train.GanConfig`.

    ``amp``: run the forward passes under bfloat16 autocast, on the device
    G's parameters live on (CPU or CUDA); losses and optimisers stay float32.
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, cfg, amp: bool = False):
        self.G, self.D, self.cfg = G, D, cfg
        self.ema = EMA(G, cfg.ema_decay) if cfg.ema else None
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.aug = parse_policy(cfg.diffaug)
        self.real_target = 1.0 - cfg.label_smoothing if cfg.loss == "ns" else 1.0
        self.amp = use_amp(amp, next(G.parameters()).device)  # bf16 where the device computes it natively
        self.collapsed_for = 0  # G updates in a row with D's loss below cfg.divergence_loss
        # The modules the updates run through: G and D themselves, or their DistributedDataParallel
        # wrappers once :meth:`data_parallel` is called; ``G``, ``D`` and the EMA stay the plain modules.
        self._G_run, self._D_run = G, D
        self._batch_mean = None  # the global batch's mean (data-parallel), for feature matching

    def data_parallel(self, device: torch.device) -> None:
        """Train G and D data-parallel over the process group's ranks, each
        rank on its slice of every global batch: their gradients averaged by
        DistributedDataParallel, and every statistic over the batch (G's
        BatchNorm, D's minibatch-std feature, feature matching's means) taken
        over the global batch, so that an update is the one process's update
        at the same global batch (up to the order of float additions).
        The EMA copy keeps plain BatchNorm: it is sampled by one rank alone."""
        distributed.use_cross_rank_batchnorm(self.G)
        distributed.use_cross_rank_batchnorm(self.D)
        for m in self.D.modules():
            if hasattr(m, "cross_rank"):
                m.cross_rank = True
        self._G_run, self._D_run = distributed.wrap(self.G, device), distributed.wrap(self.D, device)
        self._batch_mean = distributed.batch_mean

    def end_data_parallel(self) -> None:
        """Back to plain modules (after training: sampling and evaluation run on one rank)."""
        distributed.restore_batchnorm(self.G)
        distributed.restore_batchnorm(self.D)
        for m in self.D.modules():
            if hasattr(m, "cross_rank"):
                m.cross_rank = False
        self._G_run, self._D_run, self._batch_mean = self.G, self.D, None

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.G

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(next(self.G.parameters()).device.type, dtype=torch.bfloat16)

    def _d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What D reads: ``x`` under DiffAugment (instance noise was removed in issue 24: it did not change D)."""
        return diff_augment(x, self.aug)

    def d_step(self, real: torch.Tensor, cond_real=None, cond_fake=None,
               other_fakes: torch.Tensor | None = None, z: torch.Tensor | None = None,
               gp_alpha: torch.Tensor | None = None) -> dict[str, float]:
        """One D update on a real batch (with its conditions) against as many
        fresh G samples (with ``cond_fake``); ``other_fakes`` (at most a
        batch) take the place of the first G samples, so that D also learns
        that they are not real (the CLM's art domain: the painter's canvases,
        which would otherwise exploit D's blind spots). ``z``: the fakes'
        noise and ``gp_alpha``: WGAN-GP's interpolation weights (default:
        drawn here; a data-parallel loop passes its slice of the global
        draws). Returns D's loss, accuracy and mean D(x) on the real batch."""
        cfg = self.cfg
        if z is None:
            z = torch.randn(len(real), cfg.z_dim, device=real.device)
        with self._autocast():
            with torch.no_grad():
                fake = self._G_run(z, cond_fake)
                if other_fakes is not None and len(other_fakes):
                    k = min(len(other_fakes), len(fake))
                    fake = torch.cat([other_fakes[:k].to(fake.dtype), fake[k:]])
            real_logits, _ = self._D_run(self._d_input(real), cond_real)
            fake_logits, _ = self._D_run(self._d_input(fake), cond_fake)
            loss = losses.d_loss(cfg.loss, real_logits.float(), fake_logits.float(), self.real_target)
        if cfg.loss == "wgan-gp":
            critic = lambda x: self._D_run(self._d_input(x), cond_real)[0]  # noqa: E731
            loss = loss + cfg.gp_weight * losses.gradient_penalty(critic, real, fake.float(), alpha=gp_alpha)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        with torch.no_grad():
            real_logits, fake_logits = real_logits.float(), fake_logits.float()
            accuracy = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()).item()
            d_real = torch.sigmoid(real_logits).mean().item()
        return {"d_loss": loss.item(), "d_accuracy": accuracy, "d_real": d_real}

    def g_step(self, batch_size: int, device: torch.device, cond=None,
               extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
               real_for_features: torch.Tensor | None = None, cond_for_features=None,
               z: torch.Tensor | None = None) -> dict[str, float]:
        """One G update: fool D, plus feature matching against
        ``real_for_features`` (with its conditions ``cond_for_features``;
        ``cond`` when not given) when ``cfg.feature_matching`` > 0, plus
        ``extra_loss(fake)`` when given. ``z``: the noise (default: drawn here).

        Returns ``g_loss`` (adversarial + feature matching), ``d_fake`` (mean
        D(G(z)) before the update) and ``g_extra_loss`` when there is one."""
        cfg = self.cfg
        if z is None:
            z = torch.randn(batch_size, cfg.z_dim, device=device)
        with self._autocast():
            # D runs as a plain module here: its gradients of this pass are thrown away, so they
            # need no averaging across ranks (G's, through its DDP wrapper, are averaged).
            fake = self._G_run(z, cond)
            fake_logits, fake_feats = self.D(self._d_input(fake), cond)
            loss = losses.g_loss(cfg.loss, fake_logits.float())
            if cfg.feature_matching > 0 and real_for_features is not None:
                with torch.no_grad():
                    c = cond if cond_for_features is None else cond_for_features
                    _, real_feats = self.D(self._d_input(real_for_features), c)
                loss = loss + cfg.feature_matching * losses.feature_matching_loss(real_feats.float(),
                                                                                  fake_feats.float(),
                                                                                  self._batch_mean)
        out = {"g_loss": loss.item(), "d_fake": torch.sigmoid(fake_logits.detach().float()).mean().item()}
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

    def diverged(self, row: dict[str, float], checkpoint: str | Path | None = None) -> str | None:
        """Call once per G update with that update's ``d_step`` and ``g_step``
        results: counts the updates in a row where D's loss stayed below
        ``cfg.divergence_loss`` (ns and hinge losses; WGAN-GP's critic loss has
        no floor) and returns a message when the losses are not finite or that
        count reached ``cfg.divergence_patience``, else None. ``checkpoint``:
        the last good checkpoint, named in the message."""
        cfg = self.cfg
        if cfg.loss != "wgan-gp" and "d_loss" in row:
            self.collapsed_for = self.collapsed_for + 1 if row["d_loss"] < cfg.divergence_loss else 0
        hint = f"The last good checkpoint is in {checkpoint}; " if checkpoint is not None else ""
        if not all(math.isfinite(v) for v in row.values()):
            values = ", ".join(f"{k}={v:.4g}" for k, v in row.items())
            return f"losses not finite ({values}). {hint}lower lr_d/lr_g, or try spectral_norm=true or loss=hinge"
        if cfg.loss != "wgan-gp" and self.collapsed_for >= cfg.divergence_patience:
            return (f"D's loss stayed below {cfg.divergence_loss:g} for {self.collapsed_for} steps (D rejects every "
                    f"sample, G gets no signal). {hint}try diffaug=translation,cutout, spectral_norm=true, "
                    "label_smoothing=0.1 or a smaller d_width")
        return None

    def state_dict(self) -> dict:
        """What a checkpoint needs besides :meth:`weights`: optimisers, the
        collapse count and the EMA's update count (its warm-up)."""
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
        self.G.load_state_dict(strip_prefix(w, "G."))
        self.D.load_state_dict(strip_prefix(w, "D."))
        if self.ema is not None:
            self.ema.model.load_state_dict(strip_prefix(w, "G_ema."))
