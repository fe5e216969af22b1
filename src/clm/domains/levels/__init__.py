"""Sokoban levels (Boxoban format): the Level type, files, the corpus
location, the simulator (``clm.domains.levels.env``) and pictures
(``clm.domains.levels.render``)."""

from clm.domains.levels.data import BOXOBAN_SPLITS, boxoban_split, find_boxoban_dir
from clm.domains.levels.io import LevelList, format_levels, parse_levels, read_levels, write_levels
from clm.domains.levels.level import (
    N_TILES,
    TILE_CHARS,
    Level,
    LevelError,
    levels_to_onehot,
    levels_to_tiles,
    tile_player_counts,
    tiles_to_levels,
    tiles_to_onehot,
)

__all__ = [
    "BOXOBAN_SPLITS",
    "N_TILES",
    "TILE_CHARS",
    "Level",
    "LevelError",
    "LevelList",
    "boxoban_split",
    "find_boxoban_dir",
    "format_levels",
    "levels_to_onehot",
    "levels_to_tiles",
    "parse_levels",
    "read_levels",
    "tile_player_counts",
    "tiles_to_levels",
    "tiles_to_onehot",
    "write_levels",
]
