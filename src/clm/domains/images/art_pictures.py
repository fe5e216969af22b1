"""Pictures of an art run for its report: each episode as a strip of the
canvas step by step, the creative gallery with the nearest training image
beside each canvas, the plain GAN's samples and real digits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from clm.core.rundir import atomic_write_bytes
from clm.domains.heatmaps import blend_over
from clm.domains.images.render import image_grid


def png_bytes(grid_hwc: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grid_hwc).save(buf, format="PNG")
    return buf.getvalue()


def episode_strips(strips: list[np.ndarray], scale: int = 4) -> np.ndarray:
    """One row per episode: its canvases (steps + 1, S, S) from blank to final."""
    rows = np.concatenate([np.asarray(s, np.float32)[:, None] for s in strips])
    return image_grid(rows, nrow=len(strips[0]), scale=scale)


def gallery_with_nearest(canvases: np.ndarray, nearest: np.ndarray, columns: int = 8, scale: int = 4) -> np.ndarray:
    """Pairs side by side, ``columns`` pairs a row: each creative canvas, then
    the training image closest to it (so memorisation shows at a glance)."""
    pairs = np.empty((2 * len(canvases), *canvases.shape[1:]), np.float32)
    pairs[0::2], pairs[1::2] = canvases, nearest
    return image_grid(pairs, nrow=2 * columns, scale=scale)


def write_art_pictures(folder: Path, strips: list[np.ndarray] | None, archive: np.ndarray | None,
                       nearest: np.ndarray | None, plain: np.ndarray, real: np.ndarray) -> list[Path]:
    """The art report's PNG files in ``folder`` (each written whole, then renamed); returns their paths."""
    folder = Path(folder)
    out: dict[str, np.ndarray] = {"plain_gan.png": image_grid(plain[:64]), "real.png": image_grid(real[:64])}
    if strips:
        out["episodes.png"] = episode_strips(strips)
    if archive is not None and nearest is not None and len(archive):
        order = slice(0, 48)
        out["gallery.png"] = gallery_with_nearest(archive[order], nearest[order])
    for name, grid in out.items():
        atomic_write_bytes(folder / name, png_bytes(grid))
    return [folder / name for name in out]


def canvas_picture(canvas: np.ndarray, cell: int = 8) -> np.ndarray:
    """One (S, S) canvas in [-1, 1] as a grey (S*cell, S*cell, 3) uint8 picture."""
    grey = ((np.clip(np.asarray(canvas, np.float64), -1, 1) + 1) * 127.5).round().astype(np.uint8)
    return np.repeat(np.repeat(grey, cell, 0), cell, 1)[..., None].repeat(3, 2)


def canvas_heatmap(canvas: np.ndarray, pixel_scores: np.ndarray, signed: bool, scale: float | None = None,
                   cell: int = 8) -> np.ndarray:
    """The canvas with each pixel tinted by its score (an attribution per pixel, (S, S))."""
    return blend_over(canvas_picture(canvas, cell), pixel_scores, signed, scale, cell=cell)
