"""Pictures of Sokoban levels, drawn with simple shapes (no sprite files).

Walls dark, floor light, goals as red rings, boxes as brown squares (green
when on a goal), the player as a blue circle. Each tile is drawn once per
cell size and cached; an image is then a lookup of tile ids, so the same
code serves RGB observations (fast) and report pictures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_bytes
from clm.domains.heatmaps import blend_over
from clm.domains.levels.level import N_TILES, Level

WALL_RGB = (52, 54, 66)
FLOOR_RGB = (226, 220, 204)
GOAL_RGB = (208, 52, 52)
BOX_RGB = (176, 112, 42)
BOX_ON_GOAL_RGB = (52, 160, 72)
PLAYER_RGB = (38, 92, 210)
BACKGROUND_RGB = (255, 255, 255)

_SUPERSAMPLE = 4  # draw large, then shrink: smooth edges without sprite files


def _draw_tile(tile: int, cell: int) -> np.ndarray:
    if cell < 4:
        # Too small for shapes: one flat colour per tile.
        flat = [WALL_RGB, FLOOR_RGB, GOAL_RGB, BOX_RGB, BOX_ON_GOAL_RGB, PLAYER_RGB, PLAYER_RGB][tile]
        return np.broadcast_to(np.array(flat, np.uint8), (cell, cell, 3)).copy()
    s = cell * _SUPERSAMPLE
    img = Image.new("RGB", (s, s), WALL_RGB if tile == 0 else FLOOR_RGB)
    d = ImageDraw.Draw(img)
    if tile == 0:
        d.line([(0, s * 0.5), (s, s * 0.5)], fill=(70, 72, 86), width=max(1, s // 16))
        d.line([(s * 0.5, 0), (s * 0.5, s * 0.5)], fill=(70, 72, 86), width=max(1, s // 16))
        return np.asarray(img.resize((cell, cell), Image.BOX))
    goal = tile in (2, 4, 6)
    if goal:
        m = s * 0.22
        d.ellipse([m, m, s - m, s - m], outline=GOAL_RGB, width=max(2, s // 9))
    if tile in (3, 4):
        m = s * 0.12
        colour = BOX_ON_GOAL_RGB if tile == 4 else BOX_RGB
        d.rectangle([m, m, s - m, s - m], fill=colour, outline=(40, 30, 20), width=max(1, s // 16))
        d.line([(m, m), (s - m, s - m)], fill=(40, 30, 20), width=max(1, s // 20))
        d.line([(m, s - m), (s - m, m)], fill=(40, 30, 20), width=max(1, s // 20))
    if tile in (5, 6):
        m = s * 0.3 if goal else s * 0.2
        d.ellipse([m, m, s - m, s - m], fill=PLAYER_RGB)
    return np.asarray(img.resize((cell, cell), Image.BOX))


@lru_cache(maxsize=16)
def tile_images(cell: int) -> np.ndarray:
    """(7, cell, cell, 3) uint8: the picture of each tile id."""
    if cell < 1:
        raise UserError(f"cell size must be at least 1 pixel, got {cell}")
    out = np.stack([_draw_tile(t, cell) for t in range(N_TILES)])
    out.setflags(write=False)
    return out


def tiles_to_rgb(tiles: np.ndarray, cell: int = 8) -> np.ndarray:
    """(H, W) tile ids -> (H*cell, W*cell, 3) uint8; a batch (N, H, W)
    gives (N, H*cell, W*cell, 3)."""
    tiles = np.asarray(tiles)
    pics = tile_images(cell)[tiles.astype(np.intp)]  # (..., H, W, cell, cell, 3)
    *lead, h, w = tiles.shape
    # (..., H, cell, W, cell, 3) puts each tile's pixel rows under its row.
    pics = np.moveaxis(pics, -4, -3)
    return np.ascontiguousarray(pics.reshape(*lead, h * cell, w * cell, 3))


def level_to_rgb(level: Level, cell: int = 8) -> np.ndarray:
    """A small RGB picture of a level: (H*cell, W*cell, 3) uint8."""
    return tiles_to_rgb(level.to_tiles(), cell=cell)


def render_level(level: Level, cell: int = 16) -> Image.Image:
    """The level as a PIL image, ``cell`` pixels per tile."""
    return Image.fromarray(level_to_rgb(level, cell=cell))


def render_grid(
    levels: Sequence[Level], cols: int = 8, cell: int = 16, labels: Sequence[str] | None = None, pad: int = 4
) -> Image.Image:
    """Levels side by side, ``cols`` per row, each with an optional label
    underneath. Levels of different sizes are top-left aligned in equal slots."""
    if len(levels) == 0:
        raise UserError("no levels to draw")
    if labels is not None and len(labels) != len(levels):
        raise UserError(f"{len(labels)} labels for {len(levels)} levels")
    cols = max(1, min(cols, len(levels)))
    rows = -(-len(levels) // cols)
    max_h = max(lv.shape[0] for lv in levels) * cell
    max_w = max(lv.shape[1] for lv in levels) * cell
    font = ImageFont.load_default()
    label_h = 12 if labels is not None else 0
    slot_w, slot_h = max_w + pad, max_h + pad + label_h
    sheet = Image.new("RGB", (cols * slot_w + pad, rows * slot_h + pad), BACKGROUND_RGB)
    draw = ImageDraw.Draw(sheet)
    for i, lv in enumerate(levels):
        r, c = divmod(i, cols)
        x, y = pad + c * slot_w, pad + r * slot_h
        sheet.paste(render_level(lv, cell=cell), (x, y))
        if labels is not None:
            text = str(labels[i])
            while len(text) > 1 and draw.textlength(text, font=font) > max_w:
                text = text[:-1]
            draw.text((x, y + max_h + 1), text, fill=(0, 0, 0), font=font)
    return sheet


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` as PNG atomically (readers never see half a file)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def levels_grid(levels: Sequence[Level], cell: int = 8, cols: int | None = None) -> np.ndarray:
    """Levels side by side as one RGB uint8 array (H, W, 3), about square, for TensorBoard and PNG files."""
    cols = cols or int(math.ceil(math.sqrt(len(levels))))
    return np.asarray(render_grid(levels, cols=cols, cell=cell).convert("RGB"))


def level_heatmap(level: Level, cell_scores: np.ndarray, signed: bool, scale: float | None = None,
                  cell: int = 24) -> np.ndarray:
    """The level's picture with each tile tinted by its score (an attribution
    per cell, (H, W)): (H*cell, W*cell, 3) uint8. See :mod:`clm.domains.heatmaps`."""
    scores = np.asarray(cell_scores)
    if scores.shape != level.shape:
        raise ValueError(f"{scores.shape} scores for a level of {level.shape[0]}x{level.shape[1]} tiles")
    return blend_over(level_to_rgb(level, cell=cell), scores, signed, scale, cell=cell)
