"""Pictures of levels: pixel blocks match tile pictures, colours mean what
the legend says, grids have the computed size, PNGs are written whole."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clm.domains.levels import Level, boxoban_split, find_boxoban_dir, read_levels
from clm.domains.levels.render import (
    BOX_ON_GOAL_RGB,
    BOX_RGB,
    FLOOR_RGB,
    PLAYER_RGB,
    WALL_RGB,
    level_to_rgb,
    render_grid,
    render_level,
    save_png,
    tile_images,
    tiles_to_rgb,
)

LEVEL = Level.from_text("#######\n#+$ *.#\n# .$  #\n#######", validate=False)


def test_rgb_blocks_are_tile_pictures():
    cell = 6
    rgb = level_to_rgb(LEVEL, cell=cell)
    assert rgb.shape == (4 * cell, 7 * cell, 3) and rgb.dtype == np.uint8
    pics = tile_images(cell)
    tiles = LEVEL.to_tiles()
    for r in range(4):
        for c in range(7):
            assert np.array_equal(rgb[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell], pics[tiles[r, c]])
    batch = tiles_to_rgb(np.stack([tiles, tiles]), cell=cell)
    assert batch.shape == (2, 4 * cell, 7 * cell, 3) and np.array_equal(batch[1], rgb)


def test_colours_follow_the_legend():
    cell = 16
    rgb = level_to_rgb(LEVEL, cell=cell).astype(int)

    def centre(r, c):
        return rgb[r * cell + cell // 2, c * cell + cell // 2 - 1]

    def near(a, b):
        return np.abs(np.asarray(a) - np.asarray(b)).max() < 30

    assert near(rgb[1, 1], WALL_RGB)  # wall corner
    assert near(centre(1, 1), PLAYER_RGB)  # player on goal
    assert near(centre(2, 1), FLOOR_RGB)
    assert near(rgb[1 * cell + 4, 2 * cell + 8], BOX_RGB)  # box body, off the cross
    assert near(rgb[1 * cell + 4, 4 * cell + 8], BOX_ON_GOAL_RGB)  # box on goal is green
    goal = rgb[2 * cell : 3 * cell, 2 * cell : 3 * cell]
    assert (goal[..., 0] - goal[..., 1] > 100).any()  # a red ring on the goal
    assert near(centre(2, 2), FLOOR_RGB)  # ...with floor in its middle


def test_grid_size_labels_and_png(tmp_path):
    levels = [LEVEL] * 5
    img = render_grid(levels, cols=3, cell=8, labels=[f"L{i}" for i in range(5)], pad=4)
    slot_w, slot_h = 7 * 8 + 4, 4 * 8 + 4 + 12
    assert img.size == (3 * slot_w + 4, 2 * slot_h + 4)
    assert np.array_equal(np.asarray(img)[4 : 4 + 32, 4 : 4 + 56], level_to_rgb(LEVEL, cell=8))
    path = save_png(img, tmp_path / "sub" / "grid.png")
    with Image.open(path) as back:
        assert back.size == img.size and np.array_equal(np.asarray(back.convert("RGB")), np.asarray(img))
    assert not list((tmp_path / "sub").glob(".*.tmp"))
    assert render_level(LEVEL, cell=16).size == (7 * 16, 4 * 16)


def test_boxoban_grid_picture():
    if find_boxoban_dir() is None:
        return  # picture of the real corpus only when it is present
    levels = read_levels(boxoban_split("unfiltered/test"))[:16]
    img = render_grid(levels, cols=8, cell=16, labels=[lv.name for lv in levels])
    assert img.size == (8 * (160 + 4) + 4, 2 * (160 + 4 + 12) + 4)
