"""Helpers shared by the benchmark scripts (imported as ``benchstats``: a
script's own folder is first on its import path): the 95% interval, and one
``clm run`` whose finished folder is reused."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

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


def clm_run(out: Path, args: list[str]) -> dict:
    """The summary of ``clm run --out OUT ARGS``, run only when ``out`` holds no
    finished run (so a benchmark can be stopped and started again); a folder
    left by a run that did not finish is cleared first."""
    summary = Path(out) / "summary.json"
    if not summary.exists():
        if Path(out).exists():
            shutil.rmtree(out)
        subprocess.run([sys.executable, "-m", "clm", "run", "--out", str(out), *args], check=True,
                       capture_output=True, text=True)
    return json.loads(summary.read_text())
