"""Rendering image batches as one grid (H, W, 3 uint8) and as PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def image_grid(x: torch.Tensor | np.ndarray, nrow: int | None = None, scale: int = 4, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one RGB uint8 array, each pixel
    enlarged ``scale`` times (8x8 digits are unreadable at their own size)."""
    x = torch.as_tensor(x).detach().float().cpu()
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"image_grid needs a non-empty (N, C, H, W) batch, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if c == 1:
        x = x.expand(n, 3, h, w)
    elif c != 3:
        raise ValueError(f"image_grid draws 1- or 3-channel images, got {c} channels")
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    img = img.repeat(scale, axis=1).repeat(scale, axis=2)
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    H, W = h * scale, w * scale
    grid = np.full((ncol * (H + pad) + pad, nrow * (W + pad) + pad, 3), 64, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (H + pad): pad + r * (H + pad) + H, pad + col * (W + pad): pad + col * (W + pad) + W] = img[i]
    return grid


def save_png(grid_hwc: np.ndarray, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid_hwc).save(path)
