"""Reading and writing level files in the Boxoban format.

A file holds puzzles separated by ``; N`` lines (N is the puzzle number);
empty lines between puzzles are ignored. A file or string without any ``;``
line holds one level (or several separated by empty lines).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_text
import numpy as np

from clm.domains.levels.level import (
    _CHAR_TO_TILE,
    BOX,
    BOX_ON_GOAL,
    GOAL,
    PLAYER,
    PLAYER_ON_GOAL,
    Level,
    LevelError,
    enclosed_mask,
    tiles_to_levels,
)


class LevelList(list):
    """A ``list[Level]`` that also says what was skipped while reading.

    ``skipped``: how many puzzles were invalid and left out (only with
    ``skip_invalid=True``); ``problems``: one message per skipped puzzle.
    """

    def __init__(self, levels: Iterable[Level] = (), skipped: int = 0, problems: Sequence[str] = ()):
        super().__init__(levels)
        self.skipped = skipped
        self.problems = list(problems)


def _blocks(text: str) -> list[tuple[str | None, int, list[str]]]:
    """Split text into (puzzle number or None, first line number, rows)."""
    blocks: list[tuple[str | None, int, list[str]]] = []
    number: str | None = None
    rows: list[str] = []
    first = 0

    def flush() -> None:
        nonlocal rows, number
        if rows:
            blocks.append((number, first, rows))
            number = None
        rows = []

    for lineno, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if line.startswith(";"):
            flush()
            number = line[1:].strip()
        elif line.strip() == "":
            flush()
        else:
            if not rows:
                first = lineno
            rows.append(line)
    flush()
    return blocks


def parse_levels(
    text: str, source: str = "<string>", skip_invalid: bool = False, name_prefix: str = ""
) -> LevelList:
    """Parse every puzzle in ``text`` (Boxoban format, or a single level).

    Each level's name is ``name_prefix`` + its puzzle number (or its 0-based
    position when the text has no ``; N`` lines). Invalid puzzles raise
    :class:`LevelError` naming source, puzzle number and line, unless
    ``skip_invalid``, in which case they are counted in ``.skipped``.
    """
    blocks = _blocks(text)
    labels = [number if number else str(index) for index, (number, _, _) in enumerate(blocks)]
    parsed: list[Level | None] = [None] * len(blocks)
    # Fast path: puzzles of one size are decoded and checked as one array;
    # any that fails a check is parsed again one by one for its exact error.
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, _, rows) in enumerate(blocks):
        width = len(rows[0])
        if width >= 3 and len(rows) >= 3 and all(len(r) == width for r in rows):
            groups.setdefault((len(rows), width), []).append(i)
    for (h, w), members in groups.items():
        joined = "".join("".join(blocks[i][2]) for i in members).encode("ascii", errors="replace")
        tiles = _CHAR_TO_TILE[np.frombuffer(joined, dtype=np.uint8)].reshape(len(members), h, w)
        ok = (tiles != 255).all(axis=(1, 2))
        flat = tiles.reshape(len(members), -1)
        n_player = ((flat == PLAYER) | (flat == PLAYER_ON_GOAL)).sum(1)
        n_box = ((flat == BOX) | (flat == BOX_ON_GOAL)).sum(1)
        n_goal = ((flat == GOAL) | (flat == BOX_ON_GOAL) | (flat == PLAYER_ON_GOAL)).sum(1)
        ok &= (n_player == 1) & (n_box == n_goal) & (n_box >= 1)
        good = np.flatnonzero(ok)
        if good.size:
            good_tiles = tiles[good].astype(np.int8)
            good = good[enclosed_mask(good_tiles)]
            names = [f"{name_prefix}{labels[members[j]]}" for j in good]
            for j, level in zip(good, tiles_to_levels(tiles[good].astype(np.int8), names=names)):
                parsed[members[j]] = level
    out = LevelList()
    for i, (number, first_line, rows) in enumerate(blocks):
        if parsed[i] is not None:
            out.append(parsed[i])
            continue
        try:
            level = Level.from_text(
                "\n".join(rows), source=source, number=labels[i], first_line=first_line, name=f"{name_prefix}{labels[i]}"
            )
        except LevelError as e:
            if not skip_invalid:
                raise
            out.skipped += 1
            out.problems.append(str(e))
            continue
        out.append(level)
    return out


def _level_files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder of levels", exit_code=2)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".txt" and p.is_file())
        if not files:
            raise UserError(f"{path}: folder holds no .txt level files", exit_code=2)
        return files
    return [path]


def read_levels(path: str | Path, skip_invalid: bool = False) -> LevelList:
    """Read levels from a Boxoban file, or from every ``.txt`` file of a
    folder (in sorted order). Names are ``<file stem>/<puzzle number>``.

    Returns a :class:`LevelList`; with ``skip_invalid`` its ``.skipped``
    says how many puzzles were invalid and left out.
    """
    path = Path(path)
    out = LevelList()
    for f in _level_files(path):
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{f}: not a text file of levels ({e.reason} at byte {e.start})", exit_code=2) from None
        except OSError as e:
            raise UserError(f"{f}: cannot read ({e.strerror})", exit_code=2) from None
        got = parse_levels(text, source=str(f), skip_invalid=skip_invalid, name_prefix=f"{f.stem}/")
        out.extend(got)
        out.skipped += got.skipped
        out.problems.extend(got.problems)
    if not out and not out.skipped:
        raise UserError(f"{path}: holds no levels", exit_code=2)
    return out


def format_levels(levels: Sequence[Level]) -> str:
    """Boxoban text: ``; i`` before each puzzle, an empty line after it."""
    return "".join(f"; {i}\n{lv.to_text()}\n\n" for i, lv in enumerate(levels))


def write_levels(path: str | Path, levels: Sequence[Level]) -> Path:
    """Write levels as a Boxoban file, atomically (readers never see half a
    file). Puzzles are numbered 0..N-1. Returns the path."""
    path = Path(path)
    atomic_write_text(path, format_levels(levels))
    return path
