"""Level metrics against direct loop computations on small sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clm.core.errors import UserError
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.level import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.metrics import (
    difficulty_stats,
    diversity,
    duplicate_fraction,
    novelty,
    playable_fraction,
    tile_pattern_kl,
)
from clm.domains.levels.solver import SolveResult, solve_levels


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return sum(int(a[r, c] != b[r, c]) for r in range(a.shape[0]) for c in range(a.shape[1]))


@pytest.fixture(scope="module")
def sets():
    gen = generate_levels(14, size=(7, 8), n_boxes=2, seed=1, min_pushes=2)
    ref = generate_levels(20, size=(7, 8), n_boxes=2, seed=2, min_pushes=2)
    # Put exact copies in: a duplicate within gen and one level shared with ref.
    gen = gen + [gen[0], ref[3]]
    return gen, ref


def test_novelty_matches_loop(sets):
    gen, ref = sets
    got = novelty(gen, ref, chunk=7)  # several reference chunks
    tg, tr = levels_to_tiles(gen), levels_to_tiles(ref)
    want = [min(hamming(a, b) for b in tr) for a in tg]
    assert got.tolist() == want
    assert got[-1] == 0  # the copied reference level


def loop_novelty(a: np.ndarray, b: np.ndarray) -> list[int]:
    """Min over b of the cells that differ, one query at a time; a tile id
    outside 0..6 matches nothing (as the one-hot definition has it)."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    bad_b = (b < 0) | (b > 6)
    out = []
    for x in a:
        differ = (x[None] != b) | ((x < 0) | (x > 6))[None] | bad_b
        out.append(int(differ.sum(axis=(1, 2)).min()))
    return out


@pytest.mark.parametrize("h,w", [(1, 1), (3, 4), (10, 10), (9, 13), (12, 12)])
def test_novelty_random_tiles_match_loop(h, w):
    # 10x10 with a wall ring leaves 64 varying cells (one word per bit plane);
    # 9x13 and 12x12 need 2 and 3 words; 1x1 and 3x4 are tiny.
    rng = np.random.default_rng(h * 100 + w)
    for trial in range(6):
        k = int(rng.integers(1, 8))
        a = rng.integers(0, k, (int(rng.integers(1, 60)), h, w)).astype(np.int8)
        b = rng.integers(0, k, (int(rng.integers(1, 400)), h, w)).astype(np.int8)
        if trial % 2 and h > 2 and w > 2:  # a constant wall ring in both sets
            for t in (a, b):
                t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1] = 0, 0, 0, 0
        if trial % 3 == 0:  # exact copies, and duplicates on both sides
            a[: len(a) // 3] = b[rng.integers(0, len(b), len(a) // 3)]
            b[len(b) // 2:] = b[: len(b) - len(b) // 2]
        chunk = int(rng.integers(1, 3000))
        got = novelty(a, b, chunk=chunk)
        assert got.dtype == np.int64 and got.shape == (len(a),)
        assert got.tolist() == loop_novelty(a, b), (trial, chunk)


def test_novelty_out_of_range_ids_never_match():
    rng = np.random.default_rng(5)
    a = rng.integers(-2, 10, (30, 6, 7)).astype(np.int8)
    b = rng.integers(-2, 10, (200, 6, 7)).astype(np.int8)
    b[:5] = a[:5]  # copies that hold invalid ids still differ there
    assert novelty(a, b).tolist() == loop_novelty(a, b)
    c = np.full((2, 3, 3), 7, np.int8)
    assert novelty(c, c).tolist() == [9, 9]


def test_novelty_boxoban_matches_loop():
    from clm.domains.levels import find_boxoban_dir, read_levels

    root = find_boxoban_dir()
    if root is None:
        pytest.skip("Boxoban corpus not present")
    ref = levels_to_tiles(read_levels(root / "unfiltered/train/000.txt")[:600])
    test = levels_to_tiles(read_levels(root / "unfiltered/test/000.txt")[:80])
    gen = levels_to_tiles(generate_levels(10, size=10, n_boxes=4, seed=3))
    # Queries: other Boxoban levels, generated ones, copies and a mirror image.
    queries = np.concatenate([test, gen, ref[:5], ref[7:9, :, ::-1]])
    got = novelty(queries, ref)
    assert got.tolist() == loop_novelty(queries, ref)
    assert (got[len(test) + len(gen):len(test) + len(gen) + 5] == 0).all()
    # Level lists give the same answer as tile arrays.
    assert novelty(tiles_to_levels(queries[:20]), tiles_to_levels(ref)).tolist() == got[:20].tolist()


def test_novelty_bad_chunk_is_a_user_error(sets):
    gen, ref = sets
    with pytest.raises(UserError, match="chunk"):
        novelty(gen, ref, chunk=0)


def test_diversity_matches_loop(sets):
    gen, _ = sets
    t = levels_to_tiles(gen)
    pairs = list(itertools.combinations(range(len(t)), 2))
    want = sum(hamming(t[i], t[j]) for i, j in pairs) / len(pairs)
    assert diversity(gen) == pytest.approx(want)


def test_duplicate_fraction(sets):
    gen, ref = sets
    keys = [lv.key() for lv in gen]
    assert duplicate_fraction(gen) == pytest.approx(1 - len(set(keys)) / len(keys))
    assert duplicate_fraction(gen) > 0
    ref_keys = {lv.key() for lv in ref}
    assert duplicate_fraction(gen, ref) == pytest.approx(sum(k in ref_keys for k in keys) / len(keys))


def test_tile_pattern_kl_matches_loop(sets):
    gen, ref = sets
    eps = 1e-3

    def counts(levels):
        out = {}
        for lv in levels:
            t = lv.to_tiles()
            for r in range(t.shape[0] - 1):
                for c in range(t.shape[1] - 1):
                    key = (t[r, c], t[r, c + 1], t[r + 1, c], t[r + 1, c + 1])
                    out[key] = out.get(key, 0) + 1
        return out

    ca, cb = counts(gen), counts(ref)
    keys = set(ca) | set(cb)
    na, nb = sum(ca.values()), sum(cb.values())
    want = 0.0
    for k in keys:
        p = (ca.get(k, 0) + eps) / (na + eps * len(keys))
        q = (cb.get(k, 0) + eps) / (nb + eps * len(keys))
        want += p * math.log(p / q)
    assert tile_pattern_kl(gen, ref, k=2, eps=eps) == pytest.approx(want, rel=1e-9)
    assert tile_pattern_kl(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert tile_pattern_kl(gen, ref) > 0


def test_playable_fraction_and_difficulty_stats(sets):
    gen, _ = sets
    # An unsolvable level: a box stuck in a corner.
    stuck = Level.from_text("######\n#$ @.#\n#    #\n######")
    levels = gen[:4] + [stuck]
    assert playable_fraction(levels, time_limit=5) == pytest.approx(4 / 5)
    results = solve_levels(levels)
    stats = difficulty_stats(results)
    pushes = [r.pushes for r in results if r.solved]
    assert stats["levels"] == 5 and stats["solved"] == 4 and stats["unsolvable"] == 1 and stats["limit"] == 0
    assert stats["pushes_median"] == float(np.median(pushes)) and stats["pushes_max"] == max(pushes)
    assert stats["moves_mean"] == pytest.approx(np.mean([r.n_moves for r in results if r.solved]))
    empty = difficulty_stats([SolveResult("limit")])
    assert empty["solved"] == 0 and empty["pushes_median"] is None


def test_shape_mismatch_is_a_user_error(sets):
    gen, _ = sets
    other = generate_levels(2, size=(8, 8), n_boxes=2, seed=0, min_pushes=2)
    with pytest.raises(UserError, match="cannot be compared"):
        novelty(gen, other)
