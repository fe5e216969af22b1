"""Figures for reports: matplotlib (Agg, no pyplot state), each returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# A muted palette that reads well on white and in print.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
          "#bcbd22"]


def figure_png(fig: Figure, dpi: int = 96) -> bytes:
    """The figure as PNG bytes (Agg renderer). Layouts are fixed by the
    callers (no tight-bbox pass: it draws the figure twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average over `window` points that skips NaN gaps."""
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    csum = np.cumsum(np.insert(v, 0, 0.0))
    ccount = np.cumsum(np.insert(finite.astype(float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[idx] - csum[lo]) / count
    out[~finite] = np.nan
    return out


def curves_png(series: dict[str, tuple[Sequence[float], Sequence[float]]], cols: int = 3,
               xlabel: str = "CLM round") -> bytes:
    """Small multiples: one panel per ``name -> (steps, values)`` series.
    Long, noisy series get a thin raw line and a moving average on top;
    NaN values are gaps."""
    names = list(series)
    cols = max(1, min(cols, len(names)))
    rows = math.ceil(len(names) / cols)
    panel_w, panel_h = 3.6, 2.5
    fig = Figure(figsize=(panel_w * cols, panel_h * rows))
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = np.asarray(series[name][0], dtype=float)
        y = np.asarray(series[name][1], dtype=float)
        color = COLORS[i % len(COLORS)]
        finite = np.isfinite(y)
        n_points = int(finite.sum())
        if n_points >= 50:
            ax.plot(x, y, color=color, alpha=0.3, linewidth=0.8)
            ax.plot(x, _smooth(y, max(5, n_points // 25)), color=color, linewidth=1.6)
        else:
            ax.plot(x, y, color=color, linewidth=1.4, marker="o" if n_points <= 20 else None, markersize=3)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel(xlabel, fontsize=8)
        if len(x) and np.all(np.mod(x, 1) == 0):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if n_points == 0:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes,
                    color="#b00020")
    # Fixed margins in inches, turned into figure fractions (cheaper than tight_layout).
    fig.subplots_adjust(left=0.6 / fig.get_figwidth() * 1.0, right=1 - 0.15 / fig.get_figwidth(),
                        bottom=0.45 / fig.get_figheight(), top=1 - 0.3 / fig.get_figheight(),
                        wspace=0.32, hspace=0.62)
    return figure_png(fig)


def part_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per part, the same in every time chart of a report;
    "(unaccounted)" is grey."""
    out, i = {}, 0
    for name in names:
        if name == "(unaccounted)":
            out[name] = "#c7c7c7"
        elif name not in out:
            out[name] = COLORS[i % len(COLORS)]
            i += 1
    return out


def time_share_png(shares: dict[str, float], colors: dict[str, str] | None = None) -> bytes:
    """A horizontal bar chart of each part's share of the wall-clock time."""
    names = list(shares)
    colors = colors or part_colors(names)
    values = [100.0 * shares[n] for n in names]
    fig = Figure(figsize=(6.0, 0.45 * len(names) + 0.9))
    ax = fig.add_subplot(1, 1, 1)
    ypos = np.arange(len(names))[::-1]
    ax.barh(ypos, values, color=[colors.get(n, "#7f7f7f") for n in names])
    ax.set_yticks(ypos, names)
    for y, v in zip(ypos, values):
        ax.text(v, y, f" {v:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, max(values + [1.0]) * 1.18)
    ax.set_xlabel("share of wall-clock time (%)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def time_share_over_rounds_png(steps: Sequence[float], shares: dict[str, Sequence[float]],
                               colors: dict[str, str] | None = None) -> bytes:
    """Stacked areas of each part's time share per CLM round (``shares``
    holds one value per step for each part; NaN counts as 0)."""
    x = np.asarray(steps, dtype=float)
    ys = [np.nan_to_num(np.asarray(v, dtype=float) * 100.0) for v in shares.values()]
    fig = Figure(figsize=(7.0, 2.8))
    ax = fig.add_subplot(1, 1, 1)
    colors = colors or part_colors(list(shares))
    ax.stackplot(x, *ys, labels=list(shares), colors=[colors.get(n, "#7f7f7f") for n in shares],
                 alpha=0.85)
    ax.set_xlabel("CLM round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("time share (%)")
    ax.set_ylim(0, max(100.0, float(np.max(np.sum(ys, axis=0))) if ys else 100.0))
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)
