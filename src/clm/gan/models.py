"""Generators and discriminators for (C, H, W) data.

Images: a DCGAN-style pair. DCGAN grows a 4x4 map to 64x64 through four
stride-2 stages; an 8x8 digit leaves room for only two, so G here is
linear -> (ceil(H/4), ceil(W/4)) map -> two "upsample to size + 3x3 conv +
BatchNorm + ReLU" stages -> 3x3 conv to C channels. Upsampling to an exact size
(not transposed convs) makes any H, W work (8 -> 2,4,8; 10 -> 3,5,10; 28 ->
7,14,28) without cropping or checkerboard artefacts. D mirrors it with strided
3x3 convs and LeakyReLU, no BatchNorm (BatchNorm breaks the per-sample gradient
penalty of WGAN-GP and couples samples in a batch). An MLP pair is offered too
(``arch="mlp"``): on 8x8 data it is as good and is the honest baseline.

Tile grids (levels): ``TileGenerator`` shares G's backbone but outputs logits
over tile types per cell and samples them with straight-through Gumbel-softmax:
the forward value is an exact one-hot grid, the backward pass is the softmax's
gradient, so D (and later an agent) can backprop into G.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from clm.core.distributed import batch_std


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if on else module


class ResBlock(nn.Module):
    """x + conv3x3(act(norm(conv3x3(act(norm(x)))))), at the grid's own
    resolution (pre-activation residual block; BatchNorm in G, none in D)."""

    def __init__(self, width: int, norm: bool = True, spectral_norm: bool = False):
        super().__init__()
        self.n1 = nn.BatchNorm2d(width) if norm else nn.Identity()
        self.n2 = nn.BatchNorm2d(width) if norm else nn.Identity()
        self.c1 = _sn(nn.Conv2d(width, width, 3, padding=1), spectral_norm)
        self.c2 = _sn(nn.Conv2d(width, width, 3, padding=1), spectral_norm)
        self.act = nn.ReLU() if norm else nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(self.act(self.n2(self.c1(self.act(self.n1(x))))))


class ImageGenerator(nn.Module):
    """z (B, z_dim) [+ condition (B, cond_dim)] -> x (B, C, H, W).

    ``out_activation="tanh"`` for images in [-1, 1]; ``None`` returns raw
    outputs (logits, for the tile generator).
    """

    def __init__(self, shape: tuple[int, int, int], z_dim: int = 32, width: int = 64, cond_dim: int = 0,
                 arch: str = "dcgan", out_activation: str | None = "tanh", res_blocks: int = 3,
                 refine_blocks: int = 0):
        super().__init__()
        self.shape, self.z_dim, self.cond_dim, self.arch = tuple(shape), z_dim, cond_dim, arch
        c, h, w = self.shape
        in_dim = z_dim + cond_dim
        if arch == "dcgan":
            self.h0, self.w0 = math.ceil(h / 4), math.ceil(w / 4)
            self.fc = nn.Sequential(nn.Linear(in_dim, 2 * width * self.h0 * self.w0),
                                    nn.BatchNorm1d(2 * width * self.h0 * self.w0), nn.ReLU(True))
            self.width = width
            self.body = nn.Sequential(
                nn.Upsample(size=(math.ceil(h / 2), math.ceil(w / 2)), mode="nearest"),
                nn.Conv2d(2 * width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                nn.Upsample(size=(h, w), mode="nearest"),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                nn.Conv2d(width, c, 3, padding=1),
            )
        elif arch == "mlp":
            hidden = 4 * width
            self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True),
                                    nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True),
                                    nn.Linear(hidden, c * h * w))
            self.body = None
        elif arch == "resconv":
            # The grid's own resolution throughout: a linear map from z to a width x H x W grid, then
            # residual 3x3 blocks (each cell sees its neighbours' choices: cells are modelled jointly),
            # then a 1x1 conv to C outputs. No upsampling stack (the DCGAN pair's cost).
            self.h0, self.w0, self.width = h, w, width // 2
            self.fc = nn.Linear(in_dim, self.width * h * w)
            self.body = nn.Sequential(*[ResBlock(self.width) for _ in range(res_blocks)],
                                      nn.BatchNorm2d(self.width), nn.ReLU(True), nn.Conv2d(self.width, c, 1))
        else:
            raise ValueError(f"unknown generator arch '{arch}': use dcgan, mlp or resconv")
        self.out_activation = out_activation
        # Optional refinement at the grid's resolution: residual 3x3 blocks read the whole output map
        # and add a correction, so that each cell's value depends on its neighbours' (joint cells on
        # top of an MLP that models each cell from z alone).
        self.refine = None
        if refine_blocks:
            rw = max(8, width // 4)
            self.refine = nn.Sequential(nn.Conv2d(c, rw, 3, padding=1), *[ResBlock(rw) for _ in range(refine_blocks)],
                                        nn.BatchNorm2d(rw), nn.ReLU(True), nn.Conv2d(rw, c, 1))

    def raw(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim:
            if cond is None:
                raise ValueError("this generator is conditional: pass a condition")
            z = torch.cat([z, cond.to(z.dtype)], 1)
        h = self.fc(z)
        if self.body is None:
            out = h.view(-1, *self.shape)
        elif self.arch == "resconv":
            out = self.body(h.view(-1, self.width, self.h0, self.w0))
        else:
            out = self.body(h.view(-1, 2 * self.width, self.h0, self.w0))
        return out if self.refine is None else out + self.refine(out)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = self.raw(z, cond)
        return torch.tanh(out) if self.out_activation == "tanh" else out


class MinibatchStd(nn.Module):
    """Appends one channel holding the mean over features of the per-feature
    standard deviation across the batch (Improved Techniques' minibatch
    discrimination, in the simple form of Karras et al. 2018): a collapsed G
    gives a low value that D can spot. ``cross_rank``: over the global batch
    of a data-parallel run (every rank's slice), not this rank's slice."""

    cross_rank = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cross_rank:
            std = batch_std(x.float())
        else:
            std = x.float().std(0, unbiased=False) if len(x) > 1 else torch.zeros_like(x[0]).float()
        stat = (std + 1e-8).mean().to(x.dtype)
        return torch.cat([x, stat.expand(x.shape[0], 1, *x.shape[2:])], 1)


class ImageDiscriminator(nn.Module):
    """x (B, C, H, W) [+ condition] -> (logit (B,), features (B, F)).

    ``features`` is the penultimate layer, used by feature matching. A
    condition enters by projection (Miyato & Koyama 2018): logit +=
    <embed(cond), features>. ``cross_rank``: the minibatch-std feature over
    the global batch of a data-parallel run (see :class:`MinibatchStd`).
    """

    cross_rank = False

    def __init__(self, shape: tuple[int, int, int], width: int = 64, cond_dim: int = 0, arch: str = "dcgan",
                 spectral_norm: bool = False, minibatch_std: bool = False, res_blocks: int = 2):
        super().__init__()
        c, h, w = shape
        self.cond_dim = cond_dim
        if arch == "dcgan":
            h1, w1 = (h + 1) // 2, (w + 1) // 2
            h2, w2 = (h1 + 1) // 2, (w1 + 1) // 2
            self.conv = nn.Sequential(
                _sn(nn.Conv2d(c, width, 3, padding=1), spectral_norm), nn.LeakyReLU(0.2, True),
                _sn(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), spectral_norm), nn.LeakyReLU(0.2, True),
            )
            self.mbstd = MinibatchStd() if minibatch_std else None
            self.conv2 = nn.Sequential(
                _sn(nn.Conv2d(2 * width + int(minibatch_std), 2 * width, 3, stride=2, padding=1), spectral_norm),
                nn.LeakyReLU(0.2, True), nn.Flatten())
            self.feature_dim = 2 * width * h2 * w2
        elif arch == "mlp":
            hidden = 4 * width
            self.conv = nn.Sequential(nn.Flatten(), _sn(nn.Linear(c * h * w, hidden), spectral_norm),
                                      nn.LeakyReLU(0.2, True))
            self.mbstd = None
            self.mb_linear = minibatch_std
            self.conv2 = nn.Sequential(_sn(nn.Linear(hidden + int(minibatch_std), hidden), spectral_norm),
                                       nn.LeakyReLU(0.2, True))
            self.feature_dim = hidden
        elif arch == "resconv":
            # Local patterns at full resolution (3x3 convs, residual), then the whole level: the
            # flattened map (with the minibatch-std channel) feeds the head.
            half = width // 2
            self.conv = nn.Sequential(_sn(nn.Conv2d(c, half, 3, padding=1), spectral_norm), nn.LeakyReLU(0.2, True),
                                      *[ResBlock(half, norm=False, spectral_norm=spectral_norm)
                                        for _ in range(res_blocks)], nn.LeakyReLU(0.2, True))
            self.mbstd = MinibatchStd() if minibatch_std else None
            self.conv2 = nn.Sequential(_sn(nn.Conv2d(half + int(minibatch_std), half, 3, padding=1), spectral_norm),
                                       nn.LeakyReLU(0.2, True), nn.Flatten())
            self.feature_dim = half * h * w
        else:
            raise ValueError(f"unknown discriminator arch '{arch}': use dcgan, mlp or resconv")
        self.arch = arch
        self.minibatch_std = minibatch_std
        self.head = _sn(nn.Linear(self.feature_dim, 1), spectral_norm)
        self.embed = _sn(nn.Linear(cond_dim, self.feature_dim, bias=False), spectral_norm) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x)
        if self.minibatch_std:
            if self.arch in ("dcgan", "resconv"):
                h = self.mbstd(h)
            else:
                if self.cross_rank:
                    stat = batch_std(h.float()).mean()
                else:
                    stat = h.float().std(0, unbiased=False).mean() if len(h) > 1 else h.new_zeros(())
                h = torch.cat([h, stat.to(h.dtype).expand(len(h), 1)], 1)
        feats = self.conv2(h)
        logit = self.head(feats).squeeze(1)
        if self.embed is not None:
            if cond is None:
                raise ValueError("this discriminator is conditional: pass a condition")
            logit = logit + (self.embed(cond.to(feats.dtype)) * feats).sum(1)
        return logit, feats


class TileGenerator(nn.Module):
    """z [+ condition] -> one-hot tile grid (B, n_tiles, H, W).

    ``forward`` samples each cell's tile with straight-through Gumbel-softmax
    at temperature ``tau`` (forward: exact one-hot; backward: the relaxed
    softmax's gradient). With ``sample="argmax"`` the forward value is the
    most probable tile instead (no per-cell noise: all randomness comes from
    z, so D cannot win on independent per-cell speckle). ``probs`` gives the per-cell softmax, which the
    decoder uses to build a valid level.
    """

    def __init__(self, n_tiles: int, height: int, width_cells: int, z_dim: int = 32, width: int = 64,
                 cond_dim: int = 0, arch: str = "dcgan", tau: float = 1.0, sample: str = "gumbel",
                 res_blocks: int = 3, refine_blocks: int = 0):
        super().__init__()
        if sample not in ("gumbel", "argmax"):
            raise ValueError(f"unknown tile sampling '{sample}': use gumbel or argmax")
        self.sample = sample
        self.backbone = ImageGenerator((n_tiles, height, width_cells), z_dim, width, cond_dim, arch, out_activation=None,
                                       res_blocks=res_blocks, refine_blocks=refine_blocks)
        self.shape, self.z_dim, self.cond_dim, self.tau = (n_tiles, height, width_cells), z_dim, cond_dim, tau

    def logits(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone.raw(z, cond)

    def probs(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(z, cond).float().softmax(1)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None, hard: bool = True) -> torch.Tensor:
        logits = self.logits(z, cond).float()
        if self.sample == "argmax":
            # deterministic straight-through: forward the most probable tile, backward the softmax
            soft = (logits / self.tau).softmax(1)
            if not hard:
                return soft
            onehot = F.one_hot(soft.argmax(1), soft.shape[1]).permute(0, 3, 1, 2).to(soft.dtype)
            return onehot + (soft - soft.detach())  # exactly one-hot forward: x - x is exactly 0
        return F.gumbel_softmax(logits, tau=self.tau, hard=hard, dim=1)


class EMA:
    """An exponential moving average of a model's weights, used for sampling
    (Yazici et al. 2019: the averaged G gives better samples than the last
    iterate). Buffers (BatchNorm statistics) are copied, not averaged;
    :meth:`standing_stats` recomputes them for the averaged weights."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.updates = 0
        self._standing_at: int | None = None  # ``updates`` when the standing statistics were last computed
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """``decay`` with a warm-up, min(decay, (1 + t) / (10 + t)): a fixed
        0.999 would still weigh the random initial G by 0.999^600 = 55% after
        600 steps, so short runs would sample mostly from noise."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    @torch.no_grad()
    def standing_stats(self, z_dim: int, cond_pool: torch.Tensor | None, batches: int = 50,
                       batch_size: int = 256, seed: int = 0) -> None:
        """Recompute the averaged G's BatchNorm statistics for its own weights
        (BigGAN's "standing statistics"): the statistics copied from the live G
        belong to other weights. Measured on the digits: FD-clf ratio 1.74 ->
        1.38, 1.85 -> 1.44, 2.38 -> 1.55 for three trained runs. Draws come
        from a private generator, so the training stream is unchanged."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms or self._standing_at == self.updates:  # none, or already fresh for these weights
            return
        self._standing_at = self.updates
        device = next(self.model.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over all the batches
        self.model.train()
        for _ in range(batches):
            z = torch.randn(batch_size, z_dim, generator=gen).to(device)
            c = None
            if cond_pool is not None:
                c = cond_pool[torch.randint(len(cond_pool), (batch_size,), generator=gen)].to(device)
            self.model(z, c)
        self.model.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
