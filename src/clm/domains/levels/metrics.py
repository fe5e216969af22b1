"""Level metrics, named as in DESIGN.md: playable fraction, novelty,
diversity, duplicates, 2x2 tile-pattern KL divergence, difficulty.

Distances are Hamming distances between tile grids (cells whose tile ids,
in ``TILE_CHARS`` order, differ). All levels compared must share one shape.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from clm.core.errors import UserError
from clm.domains.levels.level import N_TILES, Level, levels_to_tiles
from clm.domains.levels.solver import SolveResult, solve_levels

__all__ = [
    "playable_fraction",
    "novelty",
    "diversity",
    "duplicate_fraction",
    "tile_pattern_kl",
    "difficulty_stats",
]


def _tiles(levels) -> np.ndarray:
    """(N, H, W) int8 tile grids from levels or from an array of grids."""
    if isinstance(levels, np.ndarray):
        if levels.ndim != 3:
            raise UserError(f"expected (N, H, W) tile grids, got shape {levels.shape}")
        return levels.astype(np.int8, copy=False)
    levels = list(levels)
    if not levels:
        raise UserError("no levels given")
    return levels_to_tiles(levels)


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise UserError(f"levels of size {a.shape[1]}x{a.shape[2]} cannot be compared with reference levels of "
                        f"size {b.shape[1]}x{b.shape[2]}")


def playable_fraction(levels: Sequence[Level], time_limit: float = 10.0, n_jobs: int = 1) -> float:
    """Fraction of levels the exact solver solves within ``time_limit`` seconds
    each. A level stopped by the limit counts as not playable, so this is a
    lower bound when any level hit the limit."""
    levels = list(levels)
    if not levels:
        raise UserError("no levels given")
    results = solve_levels(levels, time_limit=time_limit, n_jobs=n_jobs)
    return sum(r.solved for r in results) / len(results)


def _onehot_features(flat: np.ndarray, keep: np.ndarray) -> torch.Tensor:
    """(N, K) float32 one-hot rows restricted to the (cell * N_TILES + tile)
    columns in ``keep``: column k is 1 where cell keep[k] // 7 holds tile keep[k] % 7."""
    cells, tiles = keep // N_TILES, keep % N_TILES
    return torch.from_numpy((flat[:, cells] == tiles[None, :]).astype(np.float32))


def novelty(levels, reference, chunk: int = 2048) -> np.ndarray:
    """(N,) int: for each level, the smallest Hamming distance to any level of
    ``reference`` (0 = copied from it).

    Vectorised: Hamming = cells - matches, and matches are dot products of
    one-hot grids (torch.matmul), in chunks of ``chunk`` reference levels.
    One-hot columns that are constant over both sets (e.g. the wall ring)
    add the same count to every pair and are dropped before the product.
    """
    a = _tiles(levels)
    b = _tiles(reference)
    _same_shape(a, b)
    cells = a.shape[1] * a.shape[2]
    n = a.shape[0]
    # A (cell, tile) column adds to some pair's matches only if the tile occurs
    # at that cell in both sets; a cell holding one tile in every level of
    # both sets adds 1 to every pair and is counted apart.
    fa, fb = a.reshape(n, -1), b.reshape(b.shape[0], -1)
    in_a = np.stack([(fa == t).any(axis=0) for t in range(N_TILES)], axis=1)
    in_b = np.stack([(fb == t).any(axis=0) for t in range(N_TILES)], axis=1)
    all_a = np.stack([(fa == t).all(axis=0) for t in range(N_TILES)], axis=1)
    all_b = np.stack([(fb == t).all(axis=0) for t in range(N_TILES)], axis=1)
    constant_match = (all_a & all_b).any(axis=1)
    keep = np.flatnonzero(((in_a & in_b) & ~constant_match[:, None]).reshape(-1))
    n_const = int(constant_match.sum())
    qa = _onehot_features(fa, keep)
    best = torch.zeros(n)
    for start in range(0, b.shape[0], chunk):
        qb = _onehot_features(fb[start:start + chunk], keep)
        matches = qa @ qb.T  # (N, chunk) counts of equal variable cells
        best = torch.maximum(best, matches.max(dim=1).values)
    return (cells - n_const - best.round().to(torch.int64)).numpy()


def diversity(levels) -> float:
    """Mean Hamming distance over all pairs of distinct levels (by index).

    Computed from per-cell tile counts: over all ordered pairs,
    sum of matches = sum over (cell, tile) of count^2, so no N x N matrix.
    """
    t = _tiles(levels)
    n = t.shape[0]
    if n < 2:
        return 0.0
    cells = t.shape[1] * t.shape[2]
    flat = t.reshape(n, -1).astype(np.int64)
    counts = np.zeros((cells, N_TILES), np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(cells), flat.shape), flat), 1)
    total = n * n * cells - int((counts ** 2).sum())
    return total / (n * (n - 1))


def duplicate_fraction(levels, reference=None) -> float:
    """Without ``reference``: the fraction of levels that repeat an earlier one
    of the same set (1 - unique / N). With ``reference``: the fraction of
    levels that also appear in ``reference``."""
    a = _tiles(levels)
    keys = [x.tobytes() for x in a]
    if reference is None:
        return 1.0 - len(set(keys)) / len(keys)
    b = _tiles(reference)
    _same_shape(a, b)
    ref = {x.tobytes() for x in b}
    return sum(k in ref for k in keys) / len(keys)


def _patterns(t: np.ndarray, k: int) -> np.ndarray:
    """All k x k windows of each grid, each encoded as one base-7 integer."""
    n, h, w = t.shape
    if k < 1 or k > min(h, w) or k > 5:
        raise UserError(f"pattern size k={k} must be between 1 and min(5, level size {h}x{w})")
    code = np.zeros((n, h - k + 1, w - k + 1), np.int64)
    for dr in range(k):
        for dc in range(k):
            code = code * N_TILES + t[:, dr:dr + h - k + 1, dc:dc + w - k + 1]
    return code.reshape(-1)


def tile_pattern_kl(levels, reference, k: int = 2, eps: float = 1e-3) -> float:
    """KL divergence KL(P_levels || P_reference) of the k x k tile-pattern
    distributions, in nats.

    Direction: it grows when ``levels`` use patterns that are rare or absent
    in the reference (unrealistic content); it does not punish missing some
    reference patterns. Both distributions are taken over the union of the
    patterns seen in either set, each count smoothed by ``eps`` (additive),
    so an unseen pattern costs a large but finite amount.
    """
    a = _tiles(levels)
    b = _tiles(reference)
    _same_shape(a, b)
    if eps <= 0:
        raise UserError(f"eps must be > 0 (smoothing), got {eps}")
    pa, pb = _patterns(a, k), _patterns(b, k)
    union, inverse = np.unique(np.concatenate([pa, pb]), return_inverse=True)
    ca = np.bincount(inverse[: pa.size], minlength=union.size).astype(np.float64)
    cb = np.bincount(inverse[pa.size:], minlength=union.size).astype(np.float64)
    p = (ca + eps) / (ca.sum() + eps * union.size)
    q = (cb + eps) / (cb.sum() + eps * union.size)
    return float(np.sum(p * np.log(p / q)))


def difficulty_stats(results: Sequence[SolveResult]) -> dict[str, float | int | None]:
    """Summary of solver results: counts per status, and over solved levels the
    mean / median / max of optimal pushes and solution moves, median
    expansions; median and max seconds over all levels."""
    results = list(results)
    solved = [r for r in results if r.solved]
    out: dict[str, float | int | None] = {
        "levels": len(results),
        "solved": len(solved),
        "unsolvable": sum(r.status == "unsolvable" for r in results),
        "limit": sum(r.status == "limit" for r in results),
    }
    for name, values in (("pushes", [r.pushes for r in solved]), ("moves", [r.n_moves for r in solved])):
        out[f"{name}_mean"] = float(np.mean(values)) if values else None
        out[f"{name}_median"] = float(np.median(values)) if values else None
        out[f"{name}_max"] = int(max(values)) if values else None
    out["expansions_median"] = float(np.median([r.expansions for r in solved])) if solved else None
    secs = [r.seconds for r in results]
    out["seconds_median"] = float(np.median(secs)) if secs else None
    out["seconds_max"] = float(max(secs)) if secs else None
    return out
