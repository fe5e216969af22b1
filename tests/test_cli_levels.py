"""`clm levels ...` end to end through clm.cli.main.main."""

from __future__ import annotations

import json

import pytest

from clm.cli.main import main
from clm.domains.levels.io import read_levels
from clm.domains.levels.solver import solve_level


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    path = tmp_path_factory.mktemp("lv") / "gen.txt"
    assert main(["levels", "generate", "-n", "6", "--size", "8", "--boxes", "2", "--seed", "4",
                 "--min-pushes", "3", "--out", str(path)]) == 0
    return path


def test_generate_writes_solvable_levels(made):
    levels = read_levels(made)
    assert len(levels) == 6 and all(lv.shape == (8, 8) and lv.n_boxes == 2 for lv in levels)
    assert all(solve_level(lv).pushes >= 3 for lv in levels)


def test_solve_json_one_line(made, capsys):
    capsys.readouterr()
    assert main(["levels", "solve", str(made), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    want = [solve_level(lv) for lv in read_levels(made)]
    assert got["levels"] == 6 and got["solved"] == 6 and got["unsolvable"] == 0 and got["limit"] == 0
    assert got["pushes_max"] == max(r.pushes for r in want)


def test_solve_text_summary_names_unsolved(tmp_path, capsys):
    f = tmp_path / "two.txt"
    f.write_text("; 0\n#####\n#@$.#\n#####\n\n; 1\n######\n#$ @.#\n#    #\n######\n")
    assert main(["levels", "solve", str(f)]) == 0
    out = capsys.readouterr().out
    assert "2 levels: 1 solved, 1 unsolvable" in out and "two/1" in out


def test_stats_with_reference(made, tmp_path, capsys):
    ref = tmp_path / "ref.txt"
    assert main(["levels", "generate", "-n", "5", "--size", "8", "--boxes", "2", "--seed", "9",
                 "--min-pushes", "3", "--out", str(ref)]) == 0
    capsys.readouterr()
    assert main(["levels", "stats", str(made), "--reference", str(ref), "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip())
    assert got["playable_fraction"] == 1.0 and got["levels"] == 6 and got["reference_levels"] == 5
    for key in ("novelty_mean", "diversity", "duplicate_fraction", "tile_kl", "pushes_median"):
        assert key in got
    assert main(["levels", "stats", str(made)]) == 0
    assert "playable_fraction" in capsys.readouterr().out


def test_render_png(made, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["levels", "render", str(made), "--out", str(out), "--cols", "3"]) == 0
    from PIL import Image

    img = Image.open(out)
    assert img.width > 3 * 8 * 16 and img.height > 2 * 8 * 16


def test_bad_file_names_file_puzzle_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("; 0\n#####\n#@$.#\n#####\n\n; 7\n#####\n#@$X#\n#####\n")
    assert main(["levels", "solve", str(bad)]) == 2  # a user's file (issue 27)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.txt" in err and "puzzle 7" in err and "line 8" in err
    assert "Traceback" not in err


def test_missing_file_and_bad_arguments(tmp_path, capsys):
    assert main(["levels", "solve", str(tmp_path / "nope.txt")]) == 2  # a user's file (issue 27)
    assert "nope.txt" in capsys.readouterr().err
    assert main(["levels", "generate", "-n", "2", "--size", "2", "--out", str(tmp_path / "x.txt")]) == 2
    assert "at least 3x3" in capsys.readouterr().err
    assert main(["levels", "generate", "-n", "2", "--size", "ten", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["levels", "solve", str(tmp_path), "--time-limit", "0"]) == 2
