"""The levels domain's metrics of a generator's samples: tile-pattern KL,
duplicates, Hamming novelty and memorisation, validity, solvability. The
generic generative metrics (FD-clf, precision/recall/density/coverage on the
level classifier's features) come from :mod:`clm.gan.metrics`; the glue in
:mod:`clm.gan_adapters.domains` puts the two together.

Raw and decoded samples: a *raw* sample is the generator's most probable tile
per cell, read as is; a *decoded* sample is the same probabilities passed
through :func:`clm.domains.levels.decode.decode_levels`, which always gives a
structurally valid level. Quality metrics are computed on decoded samples
(what a user gets); ``raw_valid_fraction`` and ``raw_solvable_fraction`` say
how much the decoder had to repair.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clm.domains.levels import metrics as lm
from clm.domains.levels.decode import raw_levels
from clm.domains.levels.level import Level
from clm.domains.levels.metrics import novelty


def hamming_memorisation_threshold(test_levels: list, train_levels: list, percentile: float = 1.0) -> float:
    """The ``percentile``-th percentile of held-out levels' Hamming distance
    to their nearest training level."""
    return float(np.percentile(novelty(test_levels, train_levels), percentile))


def evaluate_levels(probs: np.ndarray, decoded: list[Level], train_levels: list[Level], test_levels: list[Level],
                    wall_threshold: float | None = None, solve_samples: int = 200,
                    solve_time_limit: float = 2.0, solver_jobs: int = 1) -> dict[str, Any]:
    """The levels metrics of (N, 7, H, W) per-cell tile probabilities and
    their ``decoded`` levels (decoded with ``wall_threshold``, see
    :func:`clm.domains.levels.decode.room_size_threshold`); the solver checks
    the first ``solve_samples`` (0: none)."""
    raw, raw_valid = raw_levels(probs)
    out: dict[str, Any] = {}
    # novelty in cells (Hamming), the levels domain's unit; memorised: closer to a
    # training level than 99% of held-out levels are
    nov = lm.novelty(decoded, train_levels)
    threshold = hamming_memorisation_threshold(test_levels, train_levels)
    out.update({"novelty_mean": float(nov.mean()), "novelty_median": float(np.median(nov)),
                "memorised_threshold": threshold, "memorised_fraction": float((nov < threshold).mean())})
    out["wall_threshold"] = wall_threshold
    out["tile_kl"] = lm.tile_pattern_kl(decoded, train_levels)
    out["tile_kl_floor"] = lm.tile_pattern_kl(test_levels, train_levels)
    out["tile_kl_ratio"] = out["tile_kl"] / out["tile_kl_floor"] if out["tile_kl_floor"] > 0 else float("inf")
    out["tile_kl_raw"] = lm.tile_pattern_kl(probs.argmax(1).astype(np.int8), train_levels)
    out["valid_fraction"] = float(np.mean([lv.is_valid() for lv in decoded]))
    out["raw_valid_fraction"] = float(raw_valid.mean())
    out["duplicate_fraction"] = lm.duplicate_fraction(decoded, train_levels)
    out["self_duplicate_fraction"] = lm.duplicate_fraction(decoded)
    out["diversity"] = lm.diversity(decoded)
    out["diversity_floor"] = lm.diversity(test_levels)
    out["mean_boxes"] = float(np.mean([lv.n_boxes for lv in decoded]))
    if solve_samples > 0:
        m = min(solve_samples, len(decoded))
        out["solvable_fraction"] = lm.playable_fraction(decoded[:m], time_limit=solve_time_limit, n_jobs=solver_jobs)
        raw_ok = [lv for lv, ok in zip(raw[:m], raw_valid[:m]) if ok]
        out["raw_solvable_fraction"] = (lm.playable_fraction(raw_ok, time_limit=solve_time_limit, n_jobs=solver_jobs) * len(raw_ok) / m
                                        if raw_ok else 0.0)
        out["solve_samples"] = m
        out["solve_time_limit"] = solve_time_limit
    return out
