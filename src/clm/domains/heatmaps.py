"""Attribution heat maps over a domain's own picture, and sheets of them.

Domain-free drawing only: a domain (levels, canvases, words) draws its
artefact as an RGB picture with one square of ``cell`` pixels per input cell
(a tile, a pixel, a letter), and these helpers colour each cell by a score
and blend the colour over the picture. Signed maps (Integrated Gradients:
what raised or lowered the score) use a diverging map, red for raised and
blue for lowered; magnitudes (saliency) a sequential one. The colour's
opacity grows with the score's size, so cells that do not matter keep the
artefact's own picture and the map reads as "where, over what".
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

#: red raises the explained score, blue lowers it (symmetric around 0)
SIGNED_CMAP = "RdBu_r"
#: |gradient|: dark small, bright large
MAGNITUDE_CMAP = "inferno"


def colour_scale(*maps: np.ndarray) -> float:
    """The largest |value| of ``maps`` (a shared scale makes panels comparable); 1 when all are 0."""
    top = max((float(np.max(np.abs(m))) for m in maps if np.size(m)), default=0.0)
    return top if top > 0 and np.isfinite(top) else 1.0


def heat_colours(scores: np.ndarray, signed: bool, scale: float | None = None) -> np.ndarray:
    """(H, W) scores -> (H, W, 3) uint8 colours: signed on [-scale, scale],
    magnitudes on [0, scale] (``scale`` defaults to the largest |score|)."""
    scores = np.nan_to_num(np.asarray(scores, np.float64))
    scale = colour_scale(scores) if scale is None else scale
    if signed:
        unit = 0.5 + 0.5 * np.clip(scores / scale, -1.0, 1.0)
        cmap = colormaps[SIGNED_CMAP]
    else:
        unit = np.clip(np.abs(scores) / scale, 0.0, 1.0)
        cmap = colormaps[MAGNITUDE_CMAP]
    return (cmap(unit)[..., :3] * 255).round().astype(np.uint8)


def blend_over(picture: np.ndarray, scores: np.ndarray, signed: bool, scale: float | None = None,
               cell: int | None = None, floor: float = 0.2, top: float = 0.8) -> np.ndarray:
    """The (H*cell, W*cell, 3) uint8 ``picture`` with each of its H x W cells
    tinted by its score's colour; the tint's opacity runs from ``floor`` (score
    0) to ``top`` (|score| = scale). ``cell`` defaults to picture height / H."""
    scores = np.nan_to_num(np.asarray(scores, np.float64))
    h, w = scores.shape
    cell = cell or picture.shape[0] // h
    if picture.shape[:2] != (h * cell, w * cell):
        raise ValueError(f"a picture of {picture.shape[:2]} pixels does not hold {h}x{w} cells of {cell} pixels")
    scale = colour_scale(scores) if scale is None else scale
    colours = heat_colours(scores, signed, scale).astype(np.float64)
    alpha = floor + (top - floor) * np.clip(np.abs(scores) / scale, 0.0, 1.0)
    up = np.ones((cell, cell, 1))
    colours, alpha = np.kron(colours, up), np.kron(alpha[..., None], up)
    out = (1.0 - alpha) * picture.astype(np.float64) + alpha * colours
    return out.round().clip(0, 255).astype(np.uint8)


@dataclass
class Panel:
    """One picture of a sheet: its title, the RGB picture, and the colour
    scale it was drawn with (``signed`` None: a plain picture, no colour bar)."""

    title: str
    picture: np.ndarray
    signed: bool | None = None
    scale: float = 1.0


def attribution_sheet(rows: list[list[Panel]], title: str = "", panel_inches: float = 2.3,
                      aspect: float = 1.0) -> bytes:
    """Rows of panels as one PNG (matplotlib, Agg, no pyplot state): each
    heat map with a colour bar of its scale, so that values can be read off.
    ``aspect``: a panel's height over its width (a word is a strip)."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    head = 0.35 + (0.3 if title else 0.0)  # inches above the first row: its panel titles (and the sheet's)
    height = (panel_inches * aspect + 0.35) * n_rows + head - 0.35
    fig = Figure(figsize=(panel_inches * n_cols * 1.25, height))
    if title:
        fig.suptitle(title, fontsize=10)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.set_axis_off()
                continue
            p = row[c]
            ax.imshow(p.picture, interpolation="nearest")
            ax.set_title(p.title, fontsize=8)
            if p.signed is not None:
                norm = Normalize(-p.scale, p.scale) if p.signed else Normalize(0.0, p.scale)
                bar = fig.colorbar(ScalarMappable(norm, SIGNED_CMAP if p.signed else MAGNITUDE_CMAP), ax=ax,
                                   fraction=0.046, pad=0.03)
                bar.ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.02, right=0.96, bottom=0.04 / n_rows, top=1.0 - head / height, wspace=0.35,
                        hspace=0.35 / aspect)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, facecolor="white")
    return buf.getvalue()
