"""Level metrics against direct loop computations on small sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clm.core.errors import UserError
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.level import Level, levels_to_tiles
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
