"""The Sokoban level type and its encodings (text, tile ids, one-hot).

A :class:`Level` is an immutable layout: walls, goals, boxes (boolean grids of
one shape) and the player's cell. It converts to and from

* Boxoban text: ``'#'`` wall, ``' '`` floor, ``'.'`` goal, ``'$'`` box,
  ``'*'`` box on goal, ``'@'`` player, ``'+'`` player on goal;
* tile ids, one int8 per cell, in the order of :data:`TILE_CHARS`;
* one-hot planes ``(7, H, W)`` in the same channel order (the agents' and the
  GANs' input).

Any rectangular size is allowed, not only Boxoban's 10x10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clm.core.errors import UserError

#: Tile characters in tile-id / one-hot channel order:
#: 0 wall, 1 floor, 2 goal, 3 box, 4 box_on_goal, 5 player, 6 player_on_goal.
TILE_CHARS = "# .$*@+"
N_TILES = 7
WALL, FLOOR, GOAL, BOX, BOX_ON_GOAL, PLAYER, PLAYER_ON_GOAL = range(N_TILES)
TILE_NAMES = ("wall", "floor", "goal", "box", "box_on_goal", "player", "player_on_goal")

# Byte -> tile id lookup for fast text parsing; 255 marks an unknown character.
_CHAR_TO_TILE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(TILE_CHARS):
    _CHAR_TO_TILE[ord(_c)] = _i
_TILE_TO_BYTE = np.frombuffer(TILE_CHARS.encode(), dtype=np.uint8)


class LevelError(UserError):
    """A level that cannot be used: bad characters, wrong counts, not
    rectangular, or not enclosed by walls. The message says where (file,
    puzzle number, line) and how to fix it. A user's file: exit 2."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message, exit_code)


def _at(where: str) -> str:
    return f"{where}: " if where else ""


@dataclass(frozen=True, eq=False)
class Level:
    """One Sokoban level.

    ``walls``, ``goals`` and ``boxes`` are ``(H, W)`` bool arrays (stored as
    read-only copies); ``player`` is ``(row, col)``. Equality is identity;
    compare layouts with :meth:`key` (hashable bytes) or :meth:`same_layout`.
    """

    walls: np.ndarray
    goals: np.ndarray
    boxes: np.ndarray
    player: tuple[int, int]
    name: str = ""

    def __post_init__(self) -> None:
        arrays = {}
        for field in ("walls", "goals", "boxes"):
            a = np.array(getattr(self, field), dtype=bool, copy=True)
            if a.ndim != 2:
                raise LevelError(f"level {self.name!r}: {field} must be a 2-D grid, got shape {a.shape}")
            a.setflags(write=False)
            arrays[field] = a
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1:
            raise LevelError(f"level {self.name!r}: walls, goals and boxes differ in shape: {sorted(shapes)}")
        for field, a in arrays.items():
            object.__setattr__(self, field, a)
        r, c = (int(v) for v in self.player)
        object.__setattr__(self, "player", (r, c))

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        """(H, W): rows, columns."""
        return self.walls.shape  # type: ignore[return-value]

    @property
    def n_boxes(self) -> int:
        return int(self.boxes.sum())

    @property
    def n_goals(self) -> int:
        return int(self.goals.sum())

    @property
    def solved(self) -> bool:
        """True when every box stands on a goal."""
        return bool(np.array_equal(self.boxes, self.boxes & self.goals)) and self.n_boxes > 0

    def key(self) -> bytes:
        """Hashable identity of the layout (shape + tiles), for dedup. The
        name is not part of it."""
        h, w = self.shape
        return h.to_bytes(2, "little") + w.to_bytes(2, "little") + self.to_tiles().tobytes()

    def same_layout(self, other: Level) -> bool:
        return self.key() == other.key()

    def replace(self, **changes) -> Level:
        """A copy with some fields changed (e.g. ``boxes=..., player=...``)."""
        fields = dict(walls=self.walls, goals=self.goals, boxes=self.boxes, player=self.player, name=self.name)
        fields.update(changes)
        return Level(**fields)

    def __repr__(self) -> str:
        h, w = self.shape
        return f"Level(name={self.name!r}, {h}x{w}, boxes={self.n_boxes}, player={self.player})"

    # ------------------------------------------------------------------- tiles
    def to_tiles(self) -> np.ndarray:
        """(H, W) int8 tile ids in :data:`TILE_CHARS` order."""
        return levels_to_tiles([self])[0]

    @classmethod
    def from_tiles(cls, tiles: np.ndarray, name: str = "", where: str = "") -> Level:
        """Decode an (H, W) grid of tile ids. Raises :class:`LevelError` when
        an id is out of range or the grid does not hold exactly one player."""
        return tiles_to_levels(np.asarray(tiles)[None], names=[name], where=where)[0]

    def to_onehot(self) -> np.ndarray:
        """(7, H, W) float32 one-hot planes, channel = tile id."""
        return levels_to_onehot([self])[0]

    @classmethod
    def from_onehot(cls, x, name: str = "", where: str = "") -> Level:
        """Decode (7, H, W) planes (one-hot or scores: argmax per cell)."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[0] != N_TILES:
            raise LevelError(f"{_at(where)}one-hot level must have shape (7, H, W), got {x.shape}")
        return cls.from_tiles(np.argmax(x, axis=0).astype(np.int8), name=name, where=where)

    # -------------------------------------------------------------------- text
    def to_text(self) -> str:
        """Boxoban text, rows joined by newlines (no trailing newline)."""
        t = self.to_tiles()
        return "\n".join(_TILE_TO_BYTE[row].tobytes().decode() for row in t)

    @classmethod
    def from_text(
        cls,
        text: str,
        source: str = "<string>",
        number: str | int | None = None,
        first_line: int = 1,
        name: str | None = None,
        validate: bool = True,
    ) -> Level:
        """Parse one level from Boxoban text.

        ``source``, ``number`` and ``first_line`` only serve error messages
        (file, puzzle number, line of the level's first row). Leading and
        trailing empty lines are ignored. With ``validate`` (the default) the
        level is also checked by :meth:`validate`.
        """
        where_puzzle = source if number is None else f"{source}, puzzle {number}"
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        start = 0
        while start < len(lines) and lines[start].strip() == "":
            start += 1
        end = len(lines)
        while end > start and lines[end - 1].strip() == "":
            end -= 1
        rows = lines[start:end]
        if not rows:
            raise LevelError(f"{where_puzzle}, line {first_line}: empty level (no rows)")
        line0 = first_line + start
        width = len(rows[0])
        for i, row in enumerate(rows):
            if len(row) != width:
                raise LevelError(
                    f"{where_puzzle}, line {line0 + i}: row has {len(row)} characters but the first row has "
                    f"{width}; rows must all have the same length (Boxoban rows are all equal): pad short rows "
                    f"with '#' walls"
                )
        try:
            raw = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8).reshape(len(rows), width)
        except UnicodeEncodeError:
            raw = None
        tiles = None if raw is None else _CHAR_TO_TILE[raw]
        if tiles is None or (tiles == 255).any():
            for i, row in enumerate(rows):
                for j, ch in enumerate(row):
                    if ch not in TILE_CHARS:
                        raise LevelError(
                            f"{where_puzzle}, line {line0 + i}, column {j + 1}: unknown character {ch!r}; "
                            f"use '#' wall, ' ' floor, '.' goal, '$' box, '*' box on goal, '@' player, "
                            f"'+' player on goal"
                        )
        n_players = int(((tiles == PLAYER) | (tiles == PLAYER_ON_GOAL)).sum())
        if n_players != 1:
            raise LevelError(
                f"{where_puzzle}, line {line0}: {n_players} players ('@' or '+'); a level needs exactly one"
            )
        level = tiles_to_levels(tiles[None].astype(np.int8), names=[name if name is not None else ("" if number is None else str(number))])[0]
        if validate:
            level.validate(where=f"{where_puzzle}, line {line0}")
        return level

    # -------------------------------------------------------------- validation
    def problems(self) -> list[str]:
        """Everything wrong with the level, as short sentences (empty if valid)."""
        out: list[str] = []
        h, w = self.shape
        r, c = self.player
        if h < 3 or w < 3:
            out.append(f"level is {h}x{w}; it needs at least 3x3 to hold a walled room")
        if not (0 <= r < h and 0 <= c < w):
            out.append(f"player at {self.player} lies outside the {h}x{w} grid")
            return out
        if self.walls[r, c]:
            out.append(f"player at row {r + 1}, column {c + 1} stands on a wall")
        if (self.boxes & self.walls).any():
            rr, cc = np.argwhere(self.boxes & self.walls)[0]
            out.append(f"box at row {rr + 1}, column {cc + 1} stands on a wall")
        if (self.goals & self.walls).any():
            rr, cc = np.argwhere(self.goals & self.walls)[0]
            out.append(f"goal at row {rr + 1}, column {cc + 1} lies on a wall")
        if self.boxes[r, c]:
            out.append(f"player at row {r + 1}, column {c + 1} stands on a box")
        nb, ng = self.n_boxes, self.n_goals
        if nb == 0:
            out.append("no boxes: a level needs at least one box ('$' or '*') and as many goals")
        elif nb != ng:
            out.append(f"{nb} boxes but {ng} goals: the counts must be equal (count '$' + '*' against '.' + '*' + '+')")
        if not out:
            leak = self._leak()
            if leak is not None:
                out.append(
                    f"not enclosed: the player can walk to row {leak[0] + 1}, column {leak[1] + 1} on the edge of "
                    f"the grid; surround the playable area with '#' walls"
                )
        return out

    def _leak(self) -> tuple[int, int] | None:
        """An edge cell reachable from the player through non-wall cells
        (boxes ignored, as they can move), or None when enclosed."""
        h, w = self.shape
        # Plain lists: indexing them is far faster than numpy scalars.
        open_cells = (~self.walls).tolist()
        seen = [[False] * w for _ in range(h)]
        r0, c0 = self.player
        stack = [(r0, c0)]
        seen[r0][c0] = True
        while stack:
            r, c = stack.pop()
            if r == 0 or c == 0 or r == h - 1 or c == w - 1:
                return (r, c)
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if open_cells[rr][cc] and not seen[rr][cc]:
                    seen[rr][cc] = True
                    stack.append((rr, cc))
        return None

    def is_valid(self) -> bool:
        return not self.problems()

    def validate(self, where: str = "") -> Level:
        """Raise :class:`LevelError` naming the first problem (prefixed by
        ``where``, e.g. ``"levels.txt, puzzle 3, line 41"``); return self."""
        probs = self.problems()
        if probs:
            label = where or (f"level {self.name!r}" if self.name else "level")
            raise LevelError(f"{label}: {probs[0]}" + (f" (and {len(probs) - 1} more problems)" if len(probs) > 1 else ""))
        return self


# --------------------------------------------------------------- batch codecs
def _stack(levels: Sequence[Level]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if len(levels) == 0:
        raise LevelError("no levels given")
    shapes = {lv.shape for lv in levels}
    if len(shapes) != 1:
        raise LevelError(f"levels of different sizes cannot be batched: {sorted(shapes)}")
    walls = np.stack([lv.walls for lv in levels])
    goals = np.stack([lv.goals for lv in levels])
    boxes = np.stack([lv.boxes for lv in levels])
    players = np.array([lv.player for lv in levels], dtype=np.int64).reshape(-1, 2)
    return walls, goals, boxes, players


def levels_to_tiles(levels: Sequence[Level]) -> np.ndarray:
    """(N, H, W) int8 tile ids for levels of one shape."""
    walls, goals, boxes, players = _stack(levels)
    n = len(levels)
    player = np.zeros_like(walls)
    player[np.arange(n), players[:, 0], players[:, 1]] = True
    # Non-wall cells: 1 floor + 1 if goal + 2 if box + 4 if player, which
    # gives exactly the ids of TILE_CHARS.
    tiles = 1 + goals.astype(np.int8) + 2 * boxes.astype(np.int8) + 4 * player.astype(np.int8)
    tiles[walls] = WALL
    return tiles.astype(np.int8)


def levels_to_onehot(levels: Sequence[Level]) -> np.ndarray:
    """(N, 7, H, W) float32 one-hot planes."""
    return tiles_to_onehot(levels_to_tiles(levels))


def tiles_to_onehot(tiles: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(N, H, W) tile ids -> (N, 7, H, W) one-hot of ``dtype``."""
    tiles = np.asarray(tiles)
    return (tiles[:, None, :, :] == np.arange(N_TILES, dtype=tiles.dtype)[None, :, None, None]).astype(dtype)


def tiles_to_levels(tiles: np.ndarray, names: Sequence[str] | None = None, where: str = "") -> list[Level]:
    """Decode (N, H, W) tile ids into Levels. Raises :class:`LevelError` on
    an id outside 0..6 or a grid without exactly one player (use
    :func:`tile_player_counts` to filter first). Levels are not validated."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 3:
        raise LevelError(f"{_at(where)}tiles must have shape (N, H, W), got {tiles.shape}")
    if tiles.size and (tiles.min() < 0 or tiles.max() >= N_TILES):
        raise LevelError(f"{_at(where)}tile ids must lie in 0..6, got {int(tiles.min())}..{int(tiles.max())}")
    n = tiles.shape[0]
    if n == 0:
        return []
    walls = tiles == WALL
    goals = (tiles == GOAL) | (tiles == BOX_ON_GOAL) | (tiles == PLAYER_ON_GOAL)
    boxes = (tiles == BOX) | (tiles == BOX_ON_GOAL)
    player = (tiles == PLAYER) | (tiles == PLAYER_ON_GOAL)
    counts = player.reshape(n, -1).sum(axis=1)
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        i = int(bad[0])
        label = names[i] if names is not None and names[i] else f"#{i}"
        raise LevelError(f"{_at(where)}level {label} has {int(counts[i])} players; a level needs exactly one")
    flat = player.reshape(n, -1).argmax(axis=1)
    rows, cols = np.divmod(flat, tiles.shape[2])
    return [
        Level(walls[i], goals[i], boxes[i], (int(rows[i]), int(cols[i])), name=(names[i] if names is not None else ""))
        for i in range(n)
    ]


def enclosed_mask(tiles: np.ndarray) -> np.ndarray:
    """(N,) bool: for (N, H, W) tile grids with one player each, whether the
    cells the player can reach (walls block, boxes do not) stay off the
    grid's edge. Batch flood fill by repeated 4-neighbour dilation."""
    tiles = np.asarray(tiles)
    open_cells = tiles != WALL
    reach = (tiles == PLAYER) | (tiles == PLAYER_ON_GOAL)
    while True:
        grown = reach.copy()
        grown[:, 1:, :] |= reach[:, :-1, :]
        grown[:, :-1, :] |= reach[:, 1:, :]
        grown[:, :, 1:] |= reach[:, :, :-1]
        grown[:, :, :-1] |= reach[:, :, 1:]
        grown &= open_cells
        grown |= reach  # the start cell counts even if it were a wall
        if np.array_equal(grown, reach):
            break
        reach = grown
    edge = reach[:, 0, :].any(1) | reach[:, -1, :].any(1) | reach[:, :, 0].any(1) | reach[:, :, -1].any(1)
    return ~edge


def tile_player_counts(tiles: np.ndarray) -> np.ndarray:
    """(N,) number of player tiles in each (N, H, W) grid (1 for a decodable level)."""
    tiles = np.asarray(tiles)
    return ((tiles == PLAYER) | (tiles == PLAYER_ON_GOAL)).reshape(tiles.shape[0], -1).sum(axis=1)
