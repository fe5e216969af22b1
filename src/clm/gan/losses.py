"""GAN losses, written as quantities to *minimise*.

The seed's objective: D maximises J_D = E_real[log D(x)] + E_G[log(1 - D(G(z)))]
and G uses the non-saturating J_G = E[log D(G(z))] (maximised). With D(x) =
sigmoid(logit), minimising ``-J_D`` and ``-J_G`` is binary cross-entropy with
logits, which is what ``d_loss_ns``/``g_loss_ns`` compute (numerically stable:
no log of a sigmoid that has underflowed).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def d_loss_ns(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """-J_D. ``real_target`` < 1 is one-sided label smoothing (Salimans et al.
    2016): only the real side is smoothed; smoothing the fake side would
    reward G for staying where D already is unsure."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_target))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def g_loss_ns(fake_logits: torch.Tensor) -> torch.Tensor:
    """-J_G = -E[log D(G(z))] (the non-saturating generator loss)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))] (also WGAN's generator loss)."""
    return -fake_logits.mean()


def d_loss_wgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)]: the negated critic estimate of the Wasserstein-1 distance."""
    return fake_logits.mean() - real_logits.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] at
    random interpolates x_hat between real and fake samples (``alpha``: the
    interpolation weights, shape (B, 1, ...); default: drawn here)."""
    if alpha is None:
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    alpha = alpha.to(real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor,
                          batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """||E[f(x)] - E[f(G(z))]||^2 on D's penultimate features (Salimans et
    al. 2016), averaged over features so its scale does not grow with width.
    ``batch_mean``: the mean over the batch (default ``x.mean(0)``; data-parallel,
    the global batch's, since the square of a slice's mean is not the square of the batch's)."""
    if batch_mean is None:
        return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).mean()
    return (batch_mean(real_features.detach()) - batch_mean(fake_features)).pow(2).mean()


LOSSES = ("ns", "hinge", "wgan-gp")


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """D's loss for ``kind`` in LOSSES (without WGAN-GP's penalty term)."""
    if kind == "ns":
        return d_loss_ns(real_logits, fake_logits, real_target)
    if kind == "hinge":
        return d_loss_hinge(real_logits, fake_logits)
    if kind == "wgan-gp":
        return d_loss_wgan(real_logits, fake_logits)
    raise ValueError(f"unknown GAN loss '{kind}': use one of {LOSSES}")


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return g_loss_ns(fake_logits)
    if kind in ("hinge", "wgan-gp"):
        return g_loss_hinge(fake_logits)
    raise ValueError(f"unknown GAN loss '{kind}': use one of {LOSSES}")
