"""The one table of levels searches (latent and edit searches register into it;
generate and serve read it), the difficulty bound a level's size and boxes allow
(against the exact solver on every small level), and bad input: a difficulty
outside that bound, a target cell outside the QD grid."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from clm.cli.main import main
from clm.core.errors import UsageError, UserError
from clm.domains.levels import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.edit_env import BadTarget, LevelEditEnv, LevelEditVecEnv
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.level import BOX, BOX_ON_GOAL, FLOOR, GOAL, PLAYER, PLAYER_ON_GOAL, WALL
from clm.domains.levels.metrics import max_optimal_pushes
from clm.domains.levels.solver import solve_levels
from clm.levels_clm import edit_qd, qd
from clm.levels_clm.generate import find_levels
from clm.levels_clm.searches import SEARCHES, LevelSearch, get_search, register_search, search_names


def test_one_table_holds_the_latent_and_the_edit_searches():
    assert search_names("latent") == ["random", "cmaes", "map_elites", "cma_me", "designer"]
    assert search_names("edit") == ["random_edits"]
    assert search_names() == search_names("latent") + search_names("edit")
    assert search_names(designer=False) == ["random", "cmaes", "map_elites", "cma_me", "random_edits"]
    assert SEARCHES["random"].fn is qd.search_random and SEARCHES["random_edits"].fn is edit_qd.search_random_edits
    assert SEARCHES["designer"].needs_designer and SEARCHES["random_edits"].caches_layouts
    with pytest.raises(ValueError, match="registered twice"):
        register_search(LevelSearch("random", qd.search_random, "latent"))
    with pytest.raises(ValueError, match="kind must be one of"):
        register_search(LevelSearch("other", qd.search_random, "sideways"))
    assert "other" not in SEARCHES
    with pytest.raises(UsageError) as e:
        get_search("annealing", "--search")
    assert e.value.exit_code == 2 and all(n in str(e.value) for n in SEARCHES)


def _room(inner_h: int, inner_w: int, player: int, boxes: tuple, goals: tuple) -> Level:
    t = np.full((inner_h + 2, inner_w + 2), WALL, np.int8)
    t[1:-1, 1:-1] = FLOOR
    inner = [(1 + i // inner_w, 1 + i % inner_w) for i in range(inner_h * inner_w)]
    for i in goals:
        t[inner[i]] = GOAL
    for i in boxes:
        t[inner[i]] = BOX_ON_GOAL if t[inner[i]] == GOAL else BOX
    t[inner[player]] = PLAYER_ON_GOAL if t[inner[player]] == GOAL else PLAYER
    return tiles_to_levels(t[None])[0]


@pytest.mark.parametrize("n_boxes", [1, 2])
def test_no_small_level_passes_the_bound(n_boxes):
    """Every 4x5 room (2x3 inner floor) with 1 or 2 boxes, solved exactly: none needs more
    optimal pushes than max_optimal_pushes allows, and the bound is the documented count."""
    cells = range(6)
    levels = [_room(2, 3, p, b, g) for b in itertools.combinations(cells, n_boxes)
              for g in itertools.combinations(cells, n_boxes) for p in cells if p not in b]
    pushes = [r.pushes for r in solve_levels(levels, time_limit=1.0) if r.solved]
    bound = max_optimal_pushes((4, 5), n_boxes)
    assert bound == max(6 * min(4, 5), 15 * min(8, 4) if n_boxes == 2 else 0)
    assert pushes and max(pushes) <= bound
    assert max_optimal_pushes((7, 7), 1) == 25 * 4
    assert max_optimal_pushes((10, 10), 4) == 635_376 * 16  # C(64, 4) box sets, 4 x 4 player cells
    assert max_optimal_pushes((3, 3), 1) == 0  # one inner cell: no room for a box and the player


def _stub_run(size: int, n_boxes: int, designer=None):
    corpus = generate_levels(4, size=size, n_boxes=n_boxes, seed=0)
    judge = SimpleNamespace(corpus_tiles=levels_to_tiles(corpus), n_boxes=n_boxes, min_novelty=3)
    return SimpleNamespace(judge=judge, designer=designer)


@pytest.mark.parametrize("search, lo, hi, most", [("random", 101, 120, 100), ("random", 8, 101, 100),
                                                   ("random_edits", 202_401, 202_500, 202_400)])
def test_a_difficulty_past_what_the_size_allows_is_refused_naming_the_range(search, lo, hi, most):
    run = _stub_run(7, 1)
    with pytest.raises(UsageError) as e:
        find_levels(run, 1, search, lo, hi, 3, seed=0)
    assert e.value.exit_code == 2 and f"1:{most}" in str(e.value) and "7x7" in str(e.value)


def test_a_target_outside_the_grid_is_a_value_error_naming_the_grid():
    levels = generate_levels(2, size=7, n_boxes=1, seed=7, min_pushes=2)
    env = LevelEditEnv(levels, bins=(12, 20))
    with pytest.raises(ValueError, match=r"\(12, 3\).*outside the 12x20 grid: pushes bin must be in 0..11"):
        env.reset(options={"level": levels[0], "target": (12, 3)})
    with pytest.raises(BadTarget, match="wall bin in 0..19") as e:
        env.reset(options={"level": levels[0], "target": (0, -1)})
    assert isinstance(e.value, UserError) and e.value.exit_code == 2  # a person's typo would exit 2, no traceback
    with pytest.raises(ValueError, match="integer cells"):
        env.reset(options={"level": levels[0], "target": (1.5, 2)})
    vec = LevelEditVecEnv(levels, 2, bins=(12, 20))
    with pytest.raises(ValueError, match="1 target cells for 2 levels"):
        vec.reset(options={"levels": levels, "targets": np.array([[0, 0]])})
    obs, info = env.reset(options={"level": levels[0], "target": (11, 19)})  # the far corner is in the grid
    assert info["target"].tolist() == [11, 19]


@pytest.mark.slow  # a tiny clm run of the session (about 30 s, shared with other tests)
def test_clm_generate_refuses_a_difficulty_the_size_cannot_hold(tiny_clm_run, tmp_path, capsys):
    out = tmp_path / "x.txt"
    assert main(["generate", str(tiny_clm_run), "-n", "1", "--out", str(out), "--search", "random",
                 "--difficulty", "101:120"]) == 2
    err = capsys.readouterr().err
    assert "1:100" in err and "Traceback" not in err and not out.exists()
    assert main(["generate", str(tiny_clm_run), "-n", "1", "--out", str(out), "--search", "random_edits",
                 "--difficulty", "300000:300001"]) == 2
    assert "1:202400" in capsys.readouterr().err and not out.exists()
