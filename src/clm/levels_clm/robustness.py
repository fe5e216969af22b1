"""How the player and D hold up when their input shifts (issue 17).

* :func:`player_robustness`: the greedy player's solve rate on held-out
  levels, clean and under four perturbations: Gaussian noise on its
  observations, one wall moved (kept solvable by the solver), mirrored
  levels and quarter-turned levels.
* :func:`flip_attack`: a gradient-guided search that flips a few cells of a
  one-hot tile grid between two tiles (levels: wall and floor) to lower D's
  score, one cell at a time; :func:`d_robustness` reports D's mean realism on
  held-out real levels before and after it.

The training option these figures judge: ``d_adversarial_flips`` (D also
learns that real levels with a few adversarial flips are real); it halves
D's drop under flips. The other options measured here (noise injection,
pool symmetries and wall moves, instance noise) made nothing more robust
and were removed in issue 24; docs/results.md keeps their figures.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from clm.domains.levels import levels_to_onehot
from clm.domains.levels.level import FLOOR, WALL, Level
from clm.domains.levels.perturb import mirrored, moved_wall, rotated
from clm.levels_clm.couplings import player_solves

#: the perturbations of :func:`player_robustness`, in the order of its figures
PERTURBATIONS = ("noise", "wall_moved", "mirrored", "rotated")


def player_robustness(policy: Callable[[np.ndarray], np.ndarray], levels: Sequence[Level], seed: int = 0,
                      noise_std: float = 0.5, time_limit: float = 2.0) -> dict[str, float]:
    """Solve rates of the greedy ``policy(obs) -> actions`` on ``levels``:
    ``player_solve_rate_clean``, then one per perturbation
    (``player_solve_rate_noise`` etc.) and their mean
    (``player_solve_rate_perturbed``). The wall-moved rate is over the
    levels for which a solvable edit was found (``wall_moved_levels``)."""
    levels = list(levels)
    rng = np.random.default_rng(seed)

    def noisy(obs: np.ndarray) -> np.ndarray:  # one-hot planes plus N(0, noise_std^2) per entry
        return policy(obs.astype(np.float32) + rng.normal(0.0, noise_std, obs.shape).astype(np.float32))

    out = {"player_solve_rate_clean": float(player_solves(policy, levels).mean())}
    out["player_solve_rate_noise"] = float(player_solves(noisy, levels).mean())
    edited, _ = moved_wall(levels, rng, time_limit=time_limit)
    out["player_solve_rate_wall_moved"] = float(player_solves(policy, edited).mean()) if edited else float("nan")
    out["wall_moved_levels"] = len(edited)
    square = all(lv.walls.shape[0] == lv.walls.shape[1] for lv in levels)
    out["player_solve_rate_mirrored"] = float(player_solves(policy, mirrored(levels)).mean())
    out["player_solve_rate_rotated"] = (float(player_solves(policy, rotated(levels)).mean()) if square
                                        else float("nan"))
    rates = [out[f"player_solve_rate_{p}"] for p in PERTURBATIONS if np.isfinite(out[f"player_solve_rate_{p}"])]
    out["player_solve_rate_perturbed"] = float(np.mean(rates))
    return out


def _score(D: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits, _ = D(x)
    return logits.float().reshape(-1)


def flip_attack(D: torch.nn.Module, x: torch.Tensor, flips: int, channels: tuple[int, int] = (WALL, FLOOR),
                direction: float = -1.0, movable: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (N, C, H, W) one-hot grids with ``flips`` cells each switched
    between the two ``channels``, chosen greedily by D's gradient: at each
    flip, the cell whose switch moves D's logit most in ``direction`` (-1:
    less real, +1: more real) to first order, among cells not flipped yet
    (and inside ``movable``, (N, H, W) bool, when given: levels keep their
    outer wall ring). D's weights get no gradient."""
    a, b = channels
    x = x.detach().clone()
    flipped = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool, device=x.device)
    on_pair = (x[:, a] + x[:, b]) > 0.5
    allowed = on_pair if movable is None else on_pair & movable
    rows = torch.arange(x.shape[0], device=x.device)
    was = [p.requires_grad for p in D.parameters()]
    D.requires_grad_(False)
    try:
        for _ in range(flips):
            xi = x.clone().requires_grad_(True)
            grad, = torch.autograd.grad(_score(D, xi).sum(), xi)
            # switching a cell from a to b changes the logit by about grad_b - grad_a (and the reverse)
            gain = torch.where(x[:, a] > 0.5, grad[:, b] - grad[:, a], grad[:, a] - grad[:, b]) * direction
            gain = gain.masked_fill(~allowed | flipped, float("-inf")).flatten(1)
            best = gain.argmax(dim=1)
            ok = torch.isfinite(gain[rows, best])
            r, c = best // x.shape[3], best % x.shape[3]
            for ch_from, ch_to in ((a, b), (b, a)):
                sel = ok & (x[rows, ch_from, r, c] > 0.5)
                x[rows[sel], ch_from, r[sel], c[sel]] = 0.0
                x[rows[sel], ch_to, r[sel], c[sel]] = 1.0
                # a cell just switched to ch_to must not switch back in the second pass
                ok = ok & ~sel
            flipped[rows, r, c] |= torch.isfinite(gain[rows, best])
    finally:
        for p, w in zip(D.parameters(), was):
            p.requires_grad_(w)
    return x


def inner_cells(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: the cells off the grid's edge (a level's outer wall ring stays)."""
    m = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool, device=x.device)
    m[:, 1:-1, 1:-1] = True
    return m


@torch.no_grad()
def _realism(D: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(_score(D, x))


def d_robustness(D: torch.nn.Module, levels: Sequence[Level], flips: Sequence[int] = (1, 2, 3),
                 device: str | torch.device = "cpu") -> dict[str, float]:
    """D's mean realism (sigmoid of its logit) on ``levels`` as they are
    (``d_realism_clean``) and after each number of adversarial wall/floor
    flips (``d_realism_flip1`` ...), and the drop after the most flips
    (``d_realism_drop``)."""
    x = torch.from_numpy(levels_to_onehot(list(levels))).float().to(device)
    was = D.training
    D.eval()
    try:
        out = {"d_realism_clean": float(_realism(D, x).mean())}
        for k in flips:
            out[f"d_realism_flip{k}"] = float(_realism(D, flip_attack(D, x, k, movable=inner_cells(x))).mean())
    finally:
        D.train(was)
    out["d_realism_drop"] = out["d_realism_clean"] - out[f"d_realism_flip{max(flips)}"]
    return out
