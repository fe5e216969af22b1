"""Statistics shared by the benchmark scripts (imported as ``benchstats``: a
script's own folder is first on its import path)."""

from __future__ import annotations

import math

import numpy as np


def ci95(values) -> tuple[float, float, float]:
    """Mean and a t-based 95% interval (Student's t with n - 1 degrees of
    freedom), ignoring None and non-finite values: (mean, low, high)."""
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return (float("nan"),) * 3
    if len(v) == 1:
        return float(v[0]), float(v[0]), float(v[0])
    half = float(t.ppf(0.975, len(v) - 1)) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)
