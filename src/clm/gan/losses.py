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
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] at
    random interpolates x_hat between real and fake samples."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """||E[f(x)] - E[f(G(z))]||^2 on D's penultimate features (Salimans et
    al. 2016), averaged over features so its scale does not grow with width."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).mean()


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


def tile_pattern_histogram(onehot: torch.Tensor) -> torch.Tensor:
    """The 2x2 tile-pattern distribution of a batch of one-hot (or relaxed)
    tile grids (B, T, H, W): a (T, T, T, T) tensor, entry [a, b, c, d] the
    share of 2x2 windows holding a (top left), b (top right), c (bottom
    left), d (bottom right). Differentiable in ``onehot``; for exact one-hot
    grids it equals the counts :func:`clm.domains.levels.metrics.tile_pattern_kl`
    compares, divided by the number of windows."""
    tl, tr = onehot[:, :, :-1, :-1], onehot[:, :, :-1, 1:]
    bl, br = onehot[:, :, 1:, :-1], onehot[:, :, 1:, 1:]
    t = onehot.shape[1]
    # top pair and bottom pair as (T*T, windows), then one matmul (a 4-operand
    # einsum took 10x longer on CPU)
    top = (tl[:, :, None] * tr[:, None]).reshape(onehot.shape[0], t * t, -1).transpose(0, 1).reshape(t * t, -1)
    bottom = (bl[:, :, None] * br[:, None]).reshape(onehot.shape[0], t * t, -1).transpose(0, 1).reshape(t * t, -1)
    return (top @ bottom.T / top.shape[1]).reshape(t, t, t, t)


class PatternMatching:
    """Feature matching on a fixed feature: G's 2x2 tile-pattern distribution
    against the training corpus's (Salimans et al. 2016 match D's features; a
    tile grid's local statistics are known exactly, so they are matched
    directly, as in moment-matching generators).

    The loss is the linearised KL(P_G || P_data) around a running estimate
    of P_G: sum over patterns of P_batch * log(P_run / P_data), the log-ratio
    held constant. Its gradient is that of the full KL at P_run, but without
    the bias of a single batch's histogram (a batch of 128 levels sees
    ~10,000 windows, too few for rare patterns); ``value`` is KL(P_run || P_data).
    """

    def __init__(self, real_onehot: torch.Tensor, momentum: float = 0.05, eps: float = 1e-6):
        with torch.no_grad():
            self.target = tile_pattern_histogram(real_onehot.float()).flatten() + eps
        self.target = self.target / self.target.sum()
        self.running: torch.Tensor | None = None  # set from the first batch
        self.momentum, self.eps = momentum, eps
        self.value = 0.0

    def __call__(self, fake_onehot: torch.Tensor) -> torch.Tensor:
        batch = tile_pattern_histogram(fake_onehot.float()).flatten()
        with torch.no_grad():
            if self.running is None:
                self.running = batch.detach().clone()
            else:
                self.running.mul_(1 - self.momentum).add_(batch.detach(), alpha=self.momentum)
            run = (self.running + self.eps) / (1 + self.eps * self.running.numel())
            log_ratio = (run / self.target).log()
            self.value = float((run * log_ratio).sum())
        return (batch * log_ratio).sum()
