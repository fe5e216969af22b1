"""Level metrics, named as in DESIGN.md: playable fraction, novelty,
diversity, duplicates, 2x2 tile-pattern KL divergence, difficulty.

Distances are Hamming distances between tile grids (cells whose tile ids,
in ``TILE_CHARS`` order, differ). All levels compared must share one shape.
"""

from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

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


@intrinsic
def _popcount(typingctx, x):
    """Number of set bits of a uint64 (LLVM ctpop: one POPCNT, or a
    vectorised nibble count inside vectorised loops)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, inline="always")
def _min_hamming_tile(qa, rb, n_planes, n_words, block, i0, i1, out):
    """out[i] = min(out[i], smallest distance of query row i to any reference
    column) for the queries i0 .. i1 - 1; see ``_min_hamming_kernel``."""
    m = rb.shape[1]
    dist = np.empty(block, np.int64)
    acc = np.empty(block, np.uint64)
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        nb = j1 - j0
        active = False
        for i in range(i0, i1):
            best = out[i]
            if best == 0:
                continue
            active = True
            if n_planes == 3 and n_words == 1:  # up to 64 varying cells (10x10 with a wall ring)
                q0 = qa[i, 0]
                q1 = qa[i, 1]
                q2 = qa[i, 2]
                r0 = rb[0, j0:j1]
                r1 = rb[1, j0:j1]
                r2 = rb[2, j0:j1]
                for j in range(nb):
                    best = min(best, _popcount((q0 ^ r0[j]) | (q1 ^ r1[j]) | (q2 ^ r2[j])))
            elif n_planes == 3:  # valid tiles, any size
                for j in range(nb):
                    dist[j] = 0
                for w in range(n_words):
                    q0 = qa[i, w]
                    q1 = qa[i, n_words + w]
                    q2 = qa[i, 2 * n_words + w]
                    r0 = rb[w, j0:j1]
                    r1 = rb[n_words + w, j0:j1]
                    r2 = rb[2 * n_words + w, j0:j1]
                    for j in range(nb):
                        dist[j] += _popcount((q0 ^ r0[j]) | (q1 ^ r1[j]) | (q2 ^ r2[j]))
                for j in range(nb):
                    best = min(best, dist[j])
            else:  # any number of planes
                for j in range(nb):
                    dist[j] = 0
                for w in range(n_words):
                    for j in range(nb):
                        acc[j] = 0
                    for p in range(n_planes):
                        q = qa[i, p * n_words + w]
                        r = rb[p * n_words + w, j0:j1]
                        for j in range(nb):
                            acc[j] |= q ^ r[j]
                    for j in range(nb):
                        dist[j] += _popcount(acc[j])
                for j in range(nb):
                    best = min(best, dist[j])
            out[i] = best
        if not active:
            break


@njit(parallel=True, cache=True)
def _min_hamming_kernel(qa, rb, n_planes, n_words, block, tile):
    """For each query row of ``qa`` (n, n_planes * n_words) the smallest
    distance to any reference column of ``rb`` (n_planes * n_words, m).

    Rows are bit-sliced grids: word ``p * n_words + w`` holds bit ``p`` of the
    cell codes of cells ``64 w .. 64 w + 63``; two cells differ iff some bit
    plane differs, so distance = sum over w of popcount(OR over p of XOR).
    Queries go in tiles of ``tile`` rows (prange), references in blocks of
    ``block`` columns kept in cache while a tile scans them; the inner loops
    over a block are branch-free so LLVM vectorises them. A query stops once
    its distance reaches 0, a tile once all its queries have.
    """
    n = qa.shape[0]
    out = np.full(n, 1 << 30, np.int64)
    for t in prange((n + tile - 1) // tile):
        _min_hamming_tile(qa, rb, n_planes, n_words, block, t * tile, min(t * tile + tile, n), out)
    return out


@njit(cache=True)
def _min_hamming_serial(qa, rb, n_planes, n_words, block):
    """``_min_hamming_kernel`` on the calling thread only, for small inputs
    (waking the thread pool can cost milliseconds on a busy machine)."""
    out = np.full(qa.shape[0], 1 << 30, np.int64)
    _min_hamming_tile(qa, rb, n_planes, n_words, block, 0, qa.shape[0], out)
    return out


@njit(cache=True)
def _bit_planes(flat, cols, bad, n_planes, n_words):
    """Rows of int8 tile ids ``flat`` (N, C), cells ``cols`` only, to
    (N, n_planes * n_words) uint64 words: word ``p * n_words + w`` holds bit p
    of the codes of kept cells 64 w .. 64 w + 63 (zero padded). The code of a
    cell is its tile id, or ``bad`` for an id outside 0..N_TILES - 1."""
    n = flat.shape[0]
    out = np.zeros((n, n_planes * n_words), np.uint64)
    for i in range(n):
        for k in range(cols.shape[0]):
            v = flat[i, cols[k]]
            code = np.uint64(v) if (v >= 0 and v < N_TILES) else np.uint64(bad)
            w = k // 64
            shift = np.uint64(k % 64)
            for p in range(n_planes):
                out[i, p * n_words + w] |= ((code >> np.uint64(p)) & np.uint64(1)) << shift
    return out


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a 2-D uint64 array (in sorted order) and the index of
    each original row among them."""
    order = np.lexsort(x.T[::-1])
    xs = x[order]
    new = np.ones(len(x), bool)
    new[1:] = (xs[1:] != xs[:-1]).any(axis=1)
    inverse = np.empty(len(x), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return np.ascontiguousarray(xs[new]), inverse


_REF_BLOCK = 1024  # reference rows per cache block (3 words each: 24 KB)
_QUERY_TILE = 16
_PARALLEL_PAIRS = 1 << 21  # fewer (pairs x words): one thread


def novelty(levels, reference, chunk: int = 2048) -> np.ndarray:
    """(N,) int: for each level, the smallest Hamming distance to any level of
    ``reference`` (0 = copied from it). Tile ids outside 0..6 (not possible
    from levels, only from raw arrays) never match, not even each other.

    Exact and vectorised, in a compiled kernel (numba, all its threads;
    one thread for small inputs):
    cells holding the same tile in every level of both sets add 0 and are
    dropped; the rest are bit-sliced (3 bit planes of the tile id, 64 cells a
    word), so the distance of two levels is popcount(OR of the planes' XORs)
    summed over words, i.e. one or two popcounts per pair for 10x10 levels.
    Duplicate levels in either set are compared once. ``chunk`` bounds the
    number of reference levels scanned as one block (at most 1024 are used).
    """
    a = _tiles(levels)
    b = _tiles(reference)
    _same_shape(a, b)
    if chunk < 1:
        raise UserError(f"chunk must be >= 1, got {chunk}")
    n, m = a.shape[0], b.shape[0]
    fa, fb = a.reshape(n, -1), b.reshape(m, -1)
    # Cells holding one valid tile in every level of both sets always match:
    # drop them. (An empty array has already failed in reshape, as before.)
    vary = ~((fa == fa[0]).all(axis=0) & (fb == fb[0]).all(axis=0) & (fa[0] == fb[0])
             & (fa[0] >= 0) & (fa[0] < N_TILES))
    cols = np.flatnonzero(vary)
    if cols.size == 0:
        return np.zeros(n, np.int64)
    # Codes: tile id 0..6; an invalid id is 8 in levels and 9 in reference,
    # so it differs from anything it meets (4 bit planes then, else 3).
    has_invalid = min(fa.min(), fb.min()) < 0 or max(fa.max(), fb.max()) >= N_TILES
    n_planes = 4 if has_invalid else 3
    n_words = -(-cols.size // 64)
    qa, q_inverse = _unique_rows(_bit_planes(np.ascontiguousarray(fa), cols, 8, n_planes, n_words))
    rb, _ = _unique_rows(_bit_planes(np.ascontiguousarray(fb), cols, 9, n_planes, n_words))
    block = int(min(chunk, _REF_BLOCK, rb.shape[0]))
    rb = np.ascontiguousarray(rb.T)
    if qa.shape[0] * rb.shape[1] * n_words < _PARALLEL_PAIRS:
        best = _min_hamming_serial(qa, rb, n_planes, n_words, block)
    else:
        tile = max(1, min(_QUERY_TILE, qa.shape[0] // (4 * numba.get_num_threads())))
        best = _min_hamming_kernel(qa, rb, n_planes, n_words, block, tile)
    return best[q_inverse]


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


def max_optimal_pushes(shape: tuple[int, int], max_boxes: int) -> int:
    """An upper bound on the optimal pushes of any valid ``H x W`` level with at
    most ``max_boxes`` boxes: what ``clm generate --difficulty`` may ask for.

    Why it holds. A box the player can push, and the player, stay inside the
    player's enclosed area (``Level.problems``: it never reaches the grid's
    edge), so within the ``F = (H - 2)(W - 2)`` inner cells. After each push the
    player stands on the cell the box just left, next to a box. An optimal
    solution never meets the same state (box cells, player cell) twice after two
    of its pushes: cutting the loop between them would solve the level in fewer
    pushes. So its pushes are at most the number of such states with ``B`` boxes,
    ``C(F, B)`` box sets times at most ``min(4 B, F - B)`` player cells next to a
    box, maximised over ``B = 1..max_boxes``. The bound is loose (it counts
    states no level reaches: 100 at 7x7 with one box, where the classic generator
    finds none of 7 or more in 200 tries), but no level can exceed it.
    """
    h, w = (int(v) for v in shape)
    inner = max(h - 2, 0) * max(w - 2, 0)
    return max((math.comb(inner, b) * min(4 * b, inner - b) for b in range(1, int(max_boxes) + 1) if inner > b),
               default=0)
