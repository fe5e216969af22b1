"""Level type, encodings, Boxoban files and the corpus location."""

from __future__ import annotations

import numpy as np
import pytest

from clm.core.errors import UserError
from clm.domains.levels import (
    N_TILES,
    TILE_CHARS,
    Level,
    LevelError,
    boxoban_split,
    find_boxoban_dir,
    levels_to_onehot,
    levels_to_tiles,
    parse_levels,
    read_levels,
    tile_player_counts,
    tiles_to_levels,
    write_levels,
)

SIMPLE = """\
#######
#  .  #
# $@$ #
#.  * #
#######"""

FILE_TEXT = """; 0
#####
#@$.#
#####

; 1
######
#+ $ #
#  * #
######

; 2
######
#@$ .#
######
"""


def test_from_text_fields_match_characters():
    lv = Level.from_text(SIMPLE)
    assert lv.shape == (5, 7)
    assert lv.player == (2, 3)
    assert lv.n_boxes == 3 and lv.n_goals == 3
    rows = SIMPLE.split("\n")
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            assert lv.walls[r, c] == (ch == "#")
            assert lv.goals[r, c] == (ch in ".*+")
            assert lv.boxes[r, c] == (ch in "$*")
    assert lv.to_text() == SIMPLE


def test_tiles_and_onehot_round_trip_against_characters():
    lv = Level.from_text(SIMPLE)
    tiles = lv.to_tiles()
    assert tiles.dtype == np.int8
    for r, row in enumerate(SIMPLE.split("\n")):
        for c, ch in enumerate(row):
            assert tiles[r, c] == TILE_CHARS.index(ch)
    oh = lv.to_onehot()
    assert oh.shape == (N_TILES, 5, 7) and oh.dtype == np.float32
    assert np.all(oh.sum(axis=0) == 1)
    assert np.array_equal(oh.argmax(axis=0), tiles)
    assert Level.from_tiles(tiles).key() == lv.key()
    assert Level.from_onehot(oh + 0.1 * np.random.default_rng(0).random(oh.shape)).key() == lv.key()


def test_key_ignores_name_and_distinguishes_layouts():
    a = Level.from_text(SIMPLE, name="a")
    b = Level.from_text(SIMPLE, name="b")
    assert a.key() == b.key() and a.same_layout(b)
    moved = a.replace(player=(1, 1))
    assert moved.key() != a.key()
    assert len({a.key(), b.key(), moved.key()}) == 2


def test_arrays_are_read_only_copies():
    walls = np.ones((3, 3), bool)
    walls[1, 1] = False
    lv = Level(walls, np.zeros((3, 3)), np.zeros((3, 3)), (1, 1))
    walls[0, 0] = False
    assert lv.walls[0, 0]
    with pytest.raises(ValueError):
        lv.walls[0, 0] = False


def test_batch_codecs_match_single_level():
    levels = parse_levels(FILE_TEXT)[:1] + [Level.from_text("#####\n#.$@#\n#####")]
    tiles = levels_to_tiles(levels)
    assert tiles.shape == (2, 3, 5)
    for i, lv in enumerate(levels):
        assert np.array_equal(tiles[i], lv.to_tiles())
    assert np.array_equal(levels_to_onehot(levels)[1], levels[1].to_onehot())
    back = tiles_to_levels(tiles, names=["x", "y"])
    assert [b.name for b in back] == ["x", "y"]
    assert all(b.key() == lv.key() for b, lv in zip(back, levels))
    bad = tiles.copy()
    bad[0, 1, 1] = 1  # remove the player
    assert list(tile_player_counts(bad)) == [0, 1]
    with pytest.raises(LevelError, match="0 players"):
        tiles_to_levels(bad)
    with pytest.raises(LevelError, match="different sizes"):
        levels_to_tiles([levels[0], Level.from_text(SIMPLE)])


def test_parse_file_numbers_names_and_sizes():
    levels = parse_levels(FILE_TEXT, source="f.txt")
    assert [lv.name for lv in levels] == ["0", "1", "2"]
    assert [lv.shape for lv in levels] == [(3, 5), (4, 6), (3, 6)]
    assert levels[1].player == (1, 1) and levels[1].goals[1, 1]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("#####\n#@$.#\n####", r"puzzle 0, line 4: .*same length.*Boxoban"),
        ("#####\n#@$x#\n#####", r"puzzle 0, line 3, column 4: unknown character 'x'"),
        ("#####\n#@$@#\n#####", r"2 players"),
        ("#####\n# $.#\n#####", r"0 players"),
        ("#####\n#@$ #\n#####", r"1 boxes but 0 goals"),
        ("#####\n#@ .#\n#####", r"no boxes"),
        ("#####\n#@$. \n#####", r"not enclosed.*row 2, column 5"),
    ],
)
def test_invalid_levels_name_puzzle_and_line(text, pattern):
    with pytest.raises(LevelError, match=pattern):
        parse_levels("; 0\n" + text, source="bad.txt")


def test_error_names_file_puzzle_and_line_in_a_file(tmp_path):
    p = tmp_path / "levels.txt"
    p.write_text(FILE_TEXT.replace("#  * #", "#  *  "))
    with pytest.raises(LevelError) as e:
        read_levels(p)
    msg = str(e.value)
    assert str(p) in msg and "puzzle 1" in msg and "line 7" in msg and "enclosed" in msg
    assert isinstance(e.value, UserError)


def test_skip_invalid_counts_skipped(tmp_path):
    p = tmp_path / "levels.txt"
    p.write_text(FILE_TEXT.replace("#@$ .#", "#@$$.#"))
    got = read_levels(p, skip_invalid=True)
    assert [lv.name for lv in got] == ["levels/0", "levels/1"]
    assert got.skipped == 1 and "puzzle 2" in got.problems[0]


def test_write_then_read_round_trip_and_folder_order(tmp_path):
    levels = parse_levels(FILE_TEXT)
    write_levels(tmp_path / "b.txt", levels[:2])
    write_levels(tmp_path / "a.txt", levels[2:])
    (tmp_path / "notes.md").write_text("ignored")
    got = read_levels(tmp_path)
    assert [lv.name for lv in got] == ["a/0", "b/0", "b/1"]
    assert [lv.key() for lv in got] == [levels[2].key(), levels[0].key(), levels[1].key()]
    assert not list(tmp_path.glob(".*.tmp"))


def test_single_level_string_and_missing_paths(tmp_path):
    assert len(parse_levels(SIMPLE)) == 1
    with pytest.raises(UserError, match="no such file"):
        read_levels(tmp_path / "nope.txt")
    with pytest.raises(UserError, match="no .txt"):
        read_levels(tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="holds no levels"):
        read_levels(tmp_path / "empty.txt")


def test_boxoban_dir_env_and_unknown_split(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown Boxoban split"):
        boxoban_split("easy")
    monkeypatch.setenv("CLM_BOXOBAN_DIR", str(tmp_path))
    assert find_boxoban_dir() == tmp_path
    with pytest.raises(UserError, match="missing"):
        boxoban_split("hard")
    monkeypatch.setenv("CLM_BOXOBAN_DIR", str(tmp_path / "none"))
    with pytest.raises(UserError, match="does not exist"):
        find_boxoban_dir()


def test_boxoban_files_parse_and_round_trip(tmp_path):
    root = find_boxoban_dir()
    if root is None:
        pytest.skip("Boxoban corpus not present (set CLM_BOXOBAN_DIR or place it at ../shared/data/boxoban)")
    levels = read_levels(boxoban_split("hard"))
    assert len(levels) == 1000 and levels.skipped == 0
    assert all(lv.shape == (10, 10) and lv.n_boxes == 4 for lv in levels)
    write_levels(tmp_path / "h.txt", levels)
    again = read_levels(tmp_path / "h.txt")
    assert [a.key() for a in again] == [b.key() for b in levels]
    text = (boxoban_split("hard") / "000.txt").read_text()
    assert text.split("; 1")[0].split("\n", 1)[1].strip("\n") == levels[0].to_text()


def test_batch_enclosure_matches_single_level_flood_fill():
    from clm.domains.levels.level import enclosed_mask

    rng = np.random.default_rng(0)
    levels = []
    for i in range(300):
        h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        walls = rng.random((h, w)) < 0.45
        if i % 2:
            walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
        free = np.argwhere(~walls)
        if len(free) == 0:
            continue
        p = tuple(int(v) for v in free[rng.integers(len(free))])
        levels.append(Level(walls, np.zeros((h, w)), np.zeros((h, w)), p))
    got = [bool(enclosed_mask(lv.to_tiles()[None])[0]) for lv in levels]
    want = [lv._leak() is None for lv in levels]
    assert got == want and 20 < sum(want) < len(want) - 20
