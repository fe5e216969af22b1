"""A loss term for tile generators: G's 2x2 tile-pattern distribution matched
to the corpus's (the differentiable twin of
:func:`clm.domains.levels.metrics.tile_pattern_kl`)."""

from __future__ import annotations

import torch


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
