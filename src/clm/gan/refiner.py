"""A learned cell refiner for categorical grids: Gibbs sweeps that give a
per-cell generator's samples the joint structure between neighbouring cells.

A tile generator that outputs per-cell probabilities is sampled one cell at
a time, independently: whatever holds *between* neighbouring cells (which
tile sits beside which) is only there as far as G's marginals carry it. The
refiner is a small model of p(x_i | the cells around i), trained by maximum
likelihood (pseudo-likelihood) on the training grids; it sees the
``kernel x kernel`` neighbourhood of a cell with the cell itself masked out
(a "blind-spot" convolution: one ``kernel x kernel`` conv whose centre tap is
zero, then 1x1 layers, so every cell's conditional comes out of one forward
pass), plus a learned bias per cell position and tile.

:func:`refine` draws a grid from G's probabilities and runs Gibbs sweeps:
cells are updated in blocks that do not see each other (a period of
``kernel // 2 + 1`` in both directions), each drawn from the product of
experts ``p_G^a * p_refiner^b`` given its current neighbours. It returns, per
cell, that same product conditional at the final grid: probabilities a
decoder can use as G's (they now hold which tile goes with the neighbours
drawn).

Domain-free: any (C, H, W) one-hot grid; nothing here knows what a tile means.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from clm.core.rundir import atomic_write_bytes


class CellRefiner(nn.Module):
    """(B, C, H, W) one-hot grid -> (B, C, H, W) logits of each cell's tile
    given its ``kernel x kernel`` neighbourhood without the cell itself."""

    def __init__(self, n_tiles: int, height: int, width_cells: int, width: int = 64, kernel: int = 5,
                 layers: int = 2):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"refiner kernel must be odd and >= 3, got {kernel}")
        self.shape, self.kernel = (n_tiles, height, width_cells), kernel
        # input: the C tile channels and an "inside the grid" channel (zero padding marks the outside)
        self.blind = nn.Conv2d(n_tiles + 1, width, kernel, padding=kernel // 2)
        mask = torch.ones(1, 1, kernel, kernel)
        mask[..., kernel // 2, kernel // 2] = 0.0
        self.register_buffer("mask", mask)
        body: list[nn.Module] = []
        for _ in range(layers - 1):
            body += [nn.ReLU(), nn.Conv2d(width, width, 1)]
        self.body = nn.Sequential(*body, nn.ReLU(), nn.Conv2d(width, n_tiles, 1))
        self.position = nn.Parameter(torch.zeros(n_tiles, height, width_cells))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        inside = grid.new_ones(len(grid), 1, *grid.shape[2:])
        h = F.conv2d(torch.cat([grid, inside], 1), self.blind.weight * self.mask, self.blind.bias,
                     padding=self.kernel // 2)
        return self.body(h) + self.position

    def logits_at(self, grid: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """The logits of the cells at flat indices ``cells`` (m,) only:
        (B, C, m), equal to ``forward(grid).flatten(2)[..., cells]`` at a
        fraction of the cost (a Gibbs block updates few cells)."""
        inside = grid.new_ones(len(grid), 1, *grid.shape[2:])
        patches = F.unfold(torch.cat([grid, inside], 1), self.kernel, padding=self.kernel // 2)[..., cells]
        weight = (self.blind.weight * self.mask).flatten(1)
        h = (weight @ patches + self.blind.bias[:, None]).unsqueeze(-1)  # (B, width, m, 1)
        return self.body(h).squeeze(-1) + self.position.flatten(1)[:, cells]


def train_refiner(grids: torch.Tensor, steps: int = 1500, batch_size: int = 256, lr: float = 3e-3,
                  width: int = 64, kernel: int = 5, seed: int = 0) -> tuple[CellRefiner, float]:
    """A :class:`CellRefiner` fitted to one-hot ``grids`` (N, C, H, W) by
    maximum pseudo-likelihood (every cell's cross-entropy given its
    neighbours), Adam, ``steps`` batches; returns it (eval mode) and its
    final mean cross-entropy per cell (nats, on the last 50 batches)."""
    if grids.ndim != 4:
        raise ValueError(f"train_refiner needs (N, C, H, W) one-hot grids, got {tuple(grids.shape)}")
    n, c, h, w = grids.shape
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CellRefiner(c, h, w, width, kernel)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    grids = grids.float()
    targets = grids.argmax(1)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(n, (min(batch_size, n),), generator=gen)
        loss = F.cross_entropy(model(grids[idx]), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return model, (sum(losses[-50:]) / len(losses[-50:]) if losses else float("nan"))


def _draw(logp: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One-hot draws, one per cell, from log-probabilities (B, C, H, W)."""
    u = torch.rand(logp.shape, generator=generator).clamp_(1e-12, 1 - 1e-12)
    idx = (logp - torch.log(-torch.log(u))).argmax(1)
    return F.one_hot(idx, logp.shape[1]).permute(0, 3, 1, 2).to(logp.dtype)


@torch.no_grad()
def refine(probs: torch.Tensor, refiner: CellRefiner, sweeps: int = 2, g_power: float = 1.0,
           refiner_power: float = 1.0, generator: torch.Generator | None = None,
           batch: int = 1024) -> torch.Tensor:
    """G's per-cell probabilities (N, C, H, W) -> refined per-cell
    probabilities of the same shape: a grid drawn from ``probs``, then
    ``sweeps`` Gibbs sweeps in non-interacting blocks, each cell drawn from
    p ∝ p_G^g_power * p_refiner^refiner_power given its current neighbours;
    the result is that conditional at every cell of the final grid.
    ``sweeps=0`` returns ``probs`` unchanged."""
    if sweeps <= 0:
        return probs
    if probs.shape[1:] != refiner.shape:
        raise ValueError(f"refiner was trained on grids of {refiner.shape}, got {tuple(probs.shape[1:])}")
    period = refiner.kernel // 2 + 1
    _, _, h, w = probs.shape
    rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
    blocks = [((rows % period == i) & (cols % period == j)).flatten().nonzero().squeeze(1)
              for i in range(period) for j in range(period)]
    out = []
    for s in range(0, len(probs), batch):
        logp_g = probs[s:s + batch].float().clamp_min(1e-12).log()
        grid = _draw(logp_g, generator)
        flat_g = logp_g.flatten(2)
        for _ in range(sweeps):
            for b in torch.randperm(len(blocks), generator=generator).tolist():
                cells = blocks[b]
                logp = g_power * flat_g[..., cells] + refiner_power * refiner.logits_at(grid, cells).log_softmax(1)
                flat = grid.flatten(2).clone()
                flat[..., cells] = _draw(logp.unsqueeze(-1), generator).squeeze(-1)
                grid = flat.view_as(grid)
        out.append((g_power * logp_g + refiner_power * refiner(grid).log_softmax(1)).softmax(1))
    return torch.cat(out)


class Refinement:
    """A refiner with its sampling settings, attached to a tile generator by
    :func:`attach` (not a submodule: G's weights and checkpoints stay as they
    are); :func:`clm.gan.train.generate` passes G's probabilities through it."""

    def __init__(self, refiner: CellRefiner, sweeps: int, g_power: float, refiner_power: float):
        self.refiner, self.sweeps, self.g_power, self.refiner_power = refiner.cpu().eval(), sweeps, g_power, refiner_power

    def __call__(self, probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return refine(probs.float().cpu(), self.refiner, self.sweeps, self.g_power, self.refiner_power, generator)


def attach(G: nn.Module, refinement: Refinement | None) -> nn.Module:
    """G with ``refinement`` applied to its sampled probabilities (None: detach)."""
    G.__dict__["refinement"] = refinement
    return G


def save_refiner(refiner: CellRefiner, path) -> None:
    """The refiner's weights as safetensors (its shape in the metadata), written atomically."""
    c, h, w = refiner.shape
    meta = {"shape": [c, h, w], "width": refiner.blind.out_channels, "kernel": refiner.kernel,
            "layers": sum(isinstance(m, nn.Conv2d) for m in refiner.body)}
    state = {k: v.detach().contiguous() for k, v in refiner.state_dict().items()}
    atomic_write_bytes(path, st_save(state, metadata={"refiner": json.dumps(meta)}))


def load_refiner(path) -> CellRefiner:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["refiner"])
    model = CellRefiner(*meta["shape"], width=meta["width"], kernel=meta["kernel"], layers=meta["layers"])
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.no_grad()
def pseudo_log_likelihood(refiner: CellRefiner, tiles, batch: int = 2048):
    """The refiner's pseudo-log-likelihood of tile grids (N, H, W) of tile
    indices (array or tensor): sum over cells of log p_refiner(cell | its
    neighbours); a numpy array (N,)."""
    t = torch.as_tensor(np.asarray(tiles)).long()
    out = []
    for s in range(0, len(t), batch):
        x = F.one_hot(t[s:s + batch], refiner.shape[0]).permute(0, 3, 1, 2).float()
        lp = refiner(x).log_softmax(1)
        out.append(lp.gather(1, t[s:s + batch].unsqueeze(1)).squeeze(1).sum((1, 2)))
    return torch.cat(out).numpy().astype(np.float64)
