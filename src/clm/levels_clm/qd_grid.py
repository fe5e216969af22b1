"""The creative archive as a quality-diversity (QD) grid.

``QDGrid`` files every judged level in a 2-D grid over two behaviour
descriptors a designer cares about: optimal pushes (always the first axis)
and one of wall density, box-goal distance or D's realism. Each cell keeps
its best level; coverage (filled cells / all cells) and the QD-score (sum of
the cells' qualities) say how much of that space a search illuminated. The
grid is the measuring instrument, identical for every search
(:mod:`clm.levels_clm.qd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ribs.archives import GridArchive

from clm.core.errors import UserError
from clm.domains.levels import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.level import WALL
from clm.levels_clm.couplings import Judgement


# -- behaviour descriptors ------------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    """One axis of the grid: its default range and bin count, and what it measures."""

    name: str
    low: float
    high: float
    bins: int
    meaning: str


#: The descriptors a grid may use; ``pushes`` is always the first axis. The default ranges and
#: bins fit the default 7x7, one-box corpus (its levels have 3-8 pushes, interior wall densities
#: 0-0.76 and box-goal distances 3-7), one bin per value: pushes 1..12 (harder levels share the
#: top bin), wall density k/25 for the 25 interior cells, whole-cell distances 1..8.
DESCRIPTORS: dict[str, Descriptor] = {d.name: d for d in (
    Descriptor("pushes", 0.5, 12.5, 12, "optimal pushes (the exact solver's shortest solution)"),
    Descriptor("wall_density", 0.0, 0.8, 20, "walls among the cells inside the outer ring"),
    Descriptor("box_goal_distance", 0.5, 8.5, 8, "mean Manhattan distance of each box to its nearest goal"),
    Descriptor("realism", 0.0, 1.0, 10, "D's probability that the level is real"),
)}
SECOND_AXES = tuple(n for n in DESCRIPTORS if n != "pushes")


def wall_density(levels: list[Level]) -> np.ndarray:
    """Fraction of walls among the cells inside the outer ring of each level
    (the ring is wall in every valid level, so it would only dilute the figure)."""
    tiles = levels_to_tiles(levels)
    inner = tiles[:, 1:-1, 1:-1] if min(tiles.shape[1:]) > 2 else tiles
    return (inner == WALL).mean(axis=(1, 2))


def box_goal_distance(levels: list[Level]) -> np.ndarray:
    """Mean over a level's boxes of the Manhattan distance to the nearest goal
    (0 for a box on a goal; 0 for a level without boxes)."""
    out = np.zeros(len(levels))
    for i, lv in enumerate(levels):
        boxes, goals = np.argwhere(lv.boxes), np.argwhere(lv.goals)
        if len(boxes) and len(goals):
            d = np.abs(boxes[:, None, :] - goals[None, :, :]).sum(axis=2)
            out[i] = d.min(axis=1).mean()
    return out


def descriptor_values(name: str, levels: list[Level], j: Judgement) -> np.ndarray:
    """The named descriptor of each level, from the level itself or the judge's figures."""
    if name == "pushes":
        return np.asarray(j.pushes, dtype=np.float64)
    if name == "realism":
        return np.asarray(j.realism, dtype=np.float64)
    if name == "wall_density":
        return wall_density(levels)
    if name == "box_goal_distance":
        return box_goal_distance(levels)
    raise UserError(f"unknown behaviour descriptor '{name}': valid ones are {', '.join(DESCRIPTORS)}")


def _rows(j: Judgement, idx) -> Judgement:
    """The judgement of some rows of a batch."""
    return Judgement(**{f: np.asarray(v)[idx] for f, v in vars(j).items()})


# -- the grid ---------------------------------------------------------------------------------
class QDGrid:
    """The creative archive as a grid over (optimal pushes, ``second``), on pyribs' ``GridArchive``.

    Quality of a level: the judge's score (``Judgement.score``: realism +
    playable + capped novelty + capped difficulty, each weighted) for a level
    that is *eligible*, i.e. playable (solved, at least one push) and novel
    (Hamming novelty >= ``min_novelty`` cells); an ineligible level has no
    quality and never enters the grid. With the judge's unit weights an
    eligible level's quality lies in [2, 4], so the QD-score is close to 2-4
    times the number of filled cells.

    Cells: each axis splits [low, high] into ``bins`` equal bins; a value
    outside the range goes to the edge bin (pyribs' rule), so e.g. the top
    pushes bin holds every level at or above its lower edge. A cell keeps the
    best-quality level offered to it. The archive's solution is the level's
    number in ``self._levels`` (a level is a grid of tiles, not a vector to
    search), so the elites' levels come back exactly.
    """

    def __init__(self, second: str = "wall_density", bins: tuple[int, int] | None = None,
                 ranges: tuple[tuple[float, float], tuple[float, float]] | None = None, min_novelty: int = 3):
        if second not in SECOND_AXES:
            raise UserError(f"unknown second behaviour descriptor '{second}': valid ones are "
                            f"{', '.join(SECOND_AXES)} (the first axis is always pushes)")
        self.names = ("pushes", second)
        axes = [DESCRIPTORS[n] for n in self.names]
        bins = tuple(d.bins for d in axes) if bins is None else tuple(bins)
        ranges = tuple((d.low, d.high) for d in axes) if ranges is None else tuple(tuple(r) for r in ranges)
        if len(bins) != 2 or len(ranges) != 2:
            raise UserError(f"a QD grid has two axes ({', '.join(self.names)}): give two bin counts and two ranges")
        for name, b in zip(self.names, bins):
            if int(b) != b or b < 1:
                raise UserError(f"bins of descriptor '{name}' must be an integer >= 1, got {b}")
        for name, r in zip(self.names, ranges):
            if len(r) != 2 or not np.all(np.isfinite(r)) or not r[0] < r[1]:
                raise UserError(f"range of descriptor '{name}' must be (low, high) with finite low < high, got {r}")
        self.bins = tuple(int(b) for b in bins)
        self.ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
        self.min_novelty = min_novelty
        self.archive = GridArchive(solution_dim=1, dims=self.bins, ranges=self.ranges)
        self._levels: dict[int, Level] = {}  # level number -> level, for the elites
        self._next = 0
        self.offered = 0  # levels offered to offer(), eligible or not

    # -- per-level figures
    def descriptors(self, levels: list[Level], j: Judgement) -> np.ndarray:
        """(N, 2) behaviour descriptors of judged levels, in axis order."""
        return np.stack([descriptor_values(n, levels, j) for n in self.names], axis=1)

    def eligible(self, j: Judgement) -> np.ndarray:
        """Levels that may enter the grid: playable and at least ``min_novelty`` novel."""
        return np.asarray(j.playable, bool) & (np.asarray(j.novelty) >= self.min_novelty)

    def cells(self, measures: np.ndarray) -> np.ndarray:
        """(N, 2) int cell of each row of descriptors (pyribs' binning)."""
        index = self.archive.index_of(np.atleast_2d(np.asarray(measures, dtype=np.float64)))
        return np.stack(np.unravel_index(index, self.bins), axis=1)

    # -- filling
    def offer(self, levels: list[Level], j: Judgement) -> np.ndarray:
        """File a judged batch; returns each level's gain in QD-score as pyribs
        counts it within the batch (its quality for a new cell, the improvement
        over the old elite, else 0)."""
        self.offered += len(levels)
        gains = np.zeros(len(levels))
        idx = np.flatnonzero(self.eligible(j))
        if not len(idx):
            return gains
        sub = [levels[i] for i in idx]
        ids = np.arange(self._next, self._next + len(idx))
        self._next += len(idx)
        info = self.archive.add(ids[:, None].astype(np.float64), np.asarray(j.score, np.float64)[idx],
                                self.descriptors(sub, _rows(j, idx)))
        gains[idx] = np.where(info["status"] > 0, info["value"], 0.0)
        kept = set(self.archive.data("solution")[:, 0].astype(np.int64).tolist())
        self._levels = {k: v for k, v in self._levels.items() if k in kept}
        self._levels.update({int(n): lv for n, lv in zip(ids, sub) if int(n) in kept})
        return gains

    def add(self, levels: list[Level], j: Judgement) -> int:
        """File a judged batch; returns how many cells it filled or improved."""
        before = self.quality
        self.offer(levels, j)
        after = self.quality
        return int((~np.isnan(after) & (np.isnan(before) | (after > before))).sum())

    # -- figures
    @property
    def filled(self) -> int:
        return int(self.archive.stats.num_elites)

    @property
    def coverage(self) -> float:
        """Filled cells / all cells."""
        return float(self.archive.stats.coverage)

    @property
    def qd_score(self) -> float:
        """Sum of the filled cells' qualities."""
        return float(self.archive.stats.qd_score) if self.filled else 0.0

    @property
    def quality(self) -> np.ndarray:
        """(pushes bins, second bins) array of cell qualities, NaN where empty."""
        q = np.full(int(np.prod(self.bins)), np.nan)
        data = self.archive.data(["index", "objective"])
        q[data["index"]] = data["objective"]
        return q.reshape(self.bins)

    def heatmap(self) -> np.ndarray:
        """(pushes bins, second bins) array of cell qualities, NaN where empty (row: pushes bin)."""
        return self.quality

    def level_at(self, cell: tuple[int, int]) -> Level | None:
        """The elite level of a cell (None: empty)."""
        occupied, data = self.archive.retrieve_single(self._cell_centre(cell))
        return self._levels[int(data["solution"][0])] if occupied else None

    def _cell_centre(self, cell: tuple[int, int]) -> np.ndarray:
        return np.array([lo + (c + 0.5) * (hi - lo) / b for c, (lo, hi), b in zip(cell, self.ranges, self.bins)])

    def elites(self) -> list[Level]:
        """The filled cells' levels, in cell order."""
        data = self.archive.data(["index", "solution"])
        order = np.argsort(data["index"])
        return [self._levels[int(n)] for n in data["solution"][order, 0]]

    def state_dict(self) -> dict:
        """Arrays only (checkpoints hold no pickles): each elite's flat cell, quality and
        descriptors, its level as a tile grid, and the offered count."""
        data = self.archive.data(["index", "objective", "measures", "solution"])
        order = np.argsort(data["index"])
        elites = [self._levels[int(n)] for n in data["solution"][order, 0]]
        return {"bins": list(self.bins), "cells": data["index"][order], "quality": data["objective"][order],
                "measures": data["measures"][order], "offered": self.offered,
                "tiles": levels_to_tiles(elites) if elites else np.zeros((0, 0, 0), np.int8)}

    def load_state_dict(self, state: dict) -> None:
        if "bins" not in state or tuple(state["bins"]) != self.bins:
            raise UserError(f"the checkpoint's QD grid has {state.get('bins')} cells; this config's has "
                            f"{self.bins}: resume with the config the run started with")
        self.archive.clear()
        levels = tiles_to_levels(state["tiles"]) if len(state["cells"]) else []
        self._levels = dict(enumerate(levels))
        self._next = len(levels)
        if levels:
            self.archive.add(np.arange(len(levels), dtype=np.float64)[:, None], np.asarray(state["quality"]),
                             np.asarray(state["measures"]))
        self.offered = int(state["offered"])
