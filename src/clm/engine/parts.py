"""Parts of the CLM loop that every domain shares: the wall-clock share of
each part of a round, and D's real batch with fed-back creative artefacts."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch


def mixed_real_batch(real_x: torch.Tensor, feedback_x: torch.Tensor | None, fraction: float, n: int) -> torch.Tensor:
    """D's real batch of ``n``: drawn from ``real_x``, with a ``fraction`` of
    it replaced by fed-back creative artefacts when there are any."""
    batch = real_x[torch.randint(len(real_x), (n,))]
    if feedback_x is not None and fraction > 0:
        k = int(round(n * fraction))
        batch[:k] = feedback_x[torch.randint(len(feedback_x), (k,))]
    return batch


class PartTimer:
    """Wall-clock seconds per named part; ``shares()`` gives the fractions."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def part(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t

    def shares(self) -> dict[str, float]:
        total = sum(self.seconds.values()) or 1.0
        return {f"time_share_{k}": v / total for k, v in self.seconds.items()}
