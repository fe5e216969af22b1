"""Pictures of words for attributions: one square per letter cell of a word
grid (the end symbol shown as a dot), tinted by a score per cell."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clm.domains.heatmaps import blend_over

#: how the end symbol (index 0 of a word grid) is drawn
END_MARK = "·"


def word_picture(cells: list[str], cell: int = 32) -> np.ndarray:
    """Letter cells side by side, black on white with a grey border: (cell, len*cell, 3) uint8."""
    img = Image.new("RGB", (cell * len(cells), cell), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=int(cell * 0.6))
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    for i, ch in enumerate(cells):
        x = i * cell
        draw.rectangle([x, 0, x + cell - 1, cell - 1], outline=(190, 190, 190))
        text = ch or END_MARK
        box = draw.textbbox((0, 0), text, font=font)
        draw.text((x + (cell - (box[2] - box[0])) / 2 - box[0], (cell - (box[3] - box[1])) / 2 - box[1]), text,
                  fill=(0, 0, 0), font=font)
    return np.asarray(img)


def word_heatmap(cells: list[str], cell_scores: np.ndarray, signed: bool, scale: float | None = None,
                 cell: int = 32) -> np.ndarray:
    """The word's letter cells, each tinted by its score ((L,) scores, one per cell)."""
    scores = np.asarray(cell_scores, np.float64).reshape(1, -1)
    if scores.shape[1] != len(cells):
        raise ValueError(f"{scores.shape[1]} scores for {len(cells)} letter cells")
    return blend_over(word_picture(cells, cell), scores, signed, scale, cell=cell)
