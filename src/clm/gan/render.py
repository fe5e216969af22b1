"""Pictures of generated levels for TensorBoard and PNG files, drawn by the
levels domain's renderer."""

from __future__ import annotations

import math

import numpy as np


def levels_grid(levels: list, cell: int = 8, cols: int | None = None) -> np.ndarray:
    """Levels side by side as one RGB uint8 array (H, W, 3)."""
    from clm.domains.levels.render import render_grid

    cols = cols or int(math.ceil(math.sqrt(len(levels))))
    return np.asarray(render_grid(levels, cols=cols, cell=cell).convert("RGB"))
