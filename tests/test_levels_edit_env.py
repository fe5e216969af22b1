"""The level edit env: each edit against a hand-made expected level, validity of
random edits checked by Level.problems, rewards against a direct computation,
Gymnasium's env checker, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from clm.core.errors import UserError
from clm.domains.levels import Level, levels_to_tiles, tiles_to_levels
from clm.domains.levels.edit_env import (ADD_PAIR, MOVE_BOX, MOVE_GOAL, N_KINDS, PLAYER_EDIT, REMOVE_PAIR, WALL_EDIT,
                                         LevelEditEnv, LevelEditVecEnv, apply_edits, edit_mask, random_edits)
from clm.domains.levels.generator import generate_levels

ROOM = """#######
#     #
# $.  #
#  #  #
#  @  #
#     #
#######"""


def act(kind: int, r: int, c: int, w: int = 7) -> int:
    return kind * 49 + r * w + c


def edit(text: str, action: int, max_boxes: int = 4) -> tuple[str, bool]:
    out, changed = apply_edits(levels_to_tiles([Level.from_text(text)]), np.array([action]), max_boxes)
    return tiles_to_levels(out)[0].to_text(), bool(changed[0])


def test_each_edit_kind_gives_the_expected_level():
    rows = ROOM.split("\n")

    def with_row(i, row, base=rows):
        return "\n".join(base[:i] + [row] + base[i + 1:])

    assert edit(ROOM, act(WALL_EDIT, 3, 3)) == (with_row(3, "#     #"), True)  # wall -> floor
    assert edit(ROOM, act(WALL_EDIT, 1, 1)) == (with_row(1, "##    #"), True)  # floor -> wall
    assert edit(ROOM, act(PLAYER_EDIT, 5, 5)) == (with_row(5, "#    @#", with_row(4, "#     #").split("\n")), True)
    added = with_row(1, "#  *  #")
    assert edit(ROOM, act(ADD_PAIR, 1, 3)) == (added, True)
    # remove at the new pair's box: its goal (under it) goes too
    assert edit(added, act(REMOVE_PAIR, 1, 3)) == (ROOM, True)
    # remove at the old box (2, 2): its nearest goal is the one under the pair at (1, 3)? no: (2, 3) is
    # 1 away, (1, 3) is 2 away, so the goal at (2, 3) goes
    assert edit(added, act(REMOVE_PAIR, 2, 2)) == (with_row(2, "#     #", added.split("\n")), True)
    # move box: the nearest box to (5, 1) is (2, 2)
    moved = with_row(5, "#$    #", with_row(2, "#  .  #").split("\n"))
    assert edit(ROOM, act(MOVE_BOX, 5, 1)) == (moved, True)
    assert edit(ROOM, act(MOVE_GOAL, 1, 5)) == (with_row(1, "#    .#", with_row(2, "# $   #").split("\n")), True)
    # the player moves onto a goal
    onto_goal = with_row(2, "# $+  #", with_row(4, "#     #").split("\n"))
    assert edit(ROOM, act(PLAYER_EDIT, 2, 3)) == (onto_goal, True)


def test_refused_edits_change_nothing():
    stop = N_KINDS * 49
    for action in (act(WALL_EDIT, 0, 3),  # the outer ring is never edited
                   act(WALL_EDIT, 2, 2),  # a box's cell cannot become wall
                   act(PLAYER_EDIT, 2, 2),  # onto a box
                   act(PLAYER_EDIT, 3, 3),  # onto a wall
                   act(REMOVE_PAIR, 2, 2),  # the last pair stays
                   act(REMOVE_PAIR, 1, 1),  # nothing there
                   act(MOVE_BOX, 4, 3),  # onto the player
                   act(MOVE_GOAL, 2, 3),  # onto its own cell (already a goal)
                   stop):
        assert edit(ROOM, action) == (ROOM, False), action
    assert edit(ROOM, act(ADD_PAIR, 1, 1), max_boxes=1) == (ROOM, False)
    # opening a wall that lets the player reach the edge is refused
    walled = "### ###\n### ###\n#######\n" + "\n".join(ROOM.split("\n")[3:])
    walled = walled.replace("#  #  #", "#  $  #", 1).replace("#  @  #", "#  @. #", 1)
    assert Level.from_text(walled).is_valid()
    assert edit(walled, act(WALL_EDIT, 2, 3)) == (walled, False)  # would join the pocket at the top edge


def test_random_edits_keep_levels_valid():
    rng = np.random.default_rng(0)
    levels = generate_levels(20, size=7, n_boxes=1, seed=3, min_pushes=2)
    tiles = levels_to_tiles(levels)
    for _ in range(6):
        tiles = random_edits(tiles, rng.integers(1, 4, len(tiles)), rng, max_boxes=3)
        for lv in tiles_to_levels(tiles):
            assert lv.problems() == [], lv.to_text()
            assert 1 <= lv.n_boxes <= 3
    assert (tiles != levels_to_tiles(levels)).any(axis=(1, 2)).all()


def test_the_mask_allows_exactly_the_edits_that_change_a_level():
    levels = generate_levels(6, size=7, n_boxes=2, seed=4, min_pushes=2)
    tiles = levels_to_tiles(levels)
    mask = edit_mask(tiles, 3)
    n_actions = mask.shape[1]
    for a in range(n_actions - 1):
        _, changed = apply_edits(tiles, np.full(len(tiles), a), 3)
        # every change is allowed by the mask; an allowed edit only fails for enclosure
        assert not (changed & ~mask[:, a]).any()
        assert (changed == mask[:, a]).all() or a // 49 in (WALL_EDIT, PLAYER_EDIT)


def score_walls(tiles, targets):
    return (np.asarray(tiles) == 0).sum(axis=(1, 2)).astype(float) + 0.5 * targets[:, 0]


def test_vec_env_rewards_the_score_change_minus_refusals():
    levels = generate_levels(4, size=7, n_boxes=1, seed=5, min_pushes=2)
    env = LevelEditVecEnv(levels, 4, bins=(12, 20), horizon=2, score_fn=score_walls, seed=0)
    obs, _ = env.reset(seed=1, options={"levels": levels, "targets": np.array([[1, 2], [3, 4], [0, 0], [11, 19]])})
    assert obs.shape == (4, 10, 7, 7) and obs.dtype == np.float32
    assert np.allclose(obs[:, 7, 0, 0], np.array([1, 3, 0, 11]) / 11) and np.allclose(obs[:, 8, 0, 0], np.array([2, 4, 0, 19]) / 19)
    start = levels_to_tiles(levels)
    refuse = act(WALL_EDIT, 0, 0)
    mask = edit_mask(start, 4)
    a1 = np.array([refuse, refuse, np.flatnonzero(mask[2, :49])[0], N_KINDS * 49])
    obs, r, term, trunc, info = env.step(a1)
    assert np.allclose(r[:3], [-0.05, -0.05, 0.0]) and r[3] == 0.0  # stop at once: score unchanged
    assert term.tolist() == [False, False, False, True] and not trunc.any()
    assert (info["final_tiles"][3] == start[3]).all()
    a2 = np.array([np.flatnonzero(mask[0, :49])[0], refuse, refuse, refuse])
    obs, r, term, trunc, info = env.step(a2)
    assert term.tolist() == [True, True, True, False] and not trunc.any()  # the horizon ends the episode
    expect = score_walls(info["final_tiles"][:3], info["final_targets"][:3]) - score_walls(start[:3], info["final_targets"][:3])
    assert np.allclose(r[:3], expect + np.array([0.0, -0.05, -0.05]))  # env 0's edit was made
    assert np.isclose(r[3], -0.05)


def test_single_env_passes_the_checker():
    levels = generate_levels(5, size=7, n_boxes=1, seed=6, min_pushes=2)
    env = LevelEditEnv(levels, bins=(12, 20), horizon=3, score_fn=score_walls)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0, options={"level": levels[0], "target": (2, 3)})
    assert info["target"].tolist() == [2, 3]


def test_bad_targets_and_actions_are_clear_errors():
    levels = generate_levels(2, size=7, n_boxes=1, seed=7, min_pushes=2)
    env = LevelEditVecEnv(levels, 2, bins=(12, 20))
    with pytest.raises(UserError, match="outside the 12x20 grid: pushes bin must be in 0..11"):
        env.reset(options={"levels": levels, "targets": np.array([[12, 0], [0, 0]])})
    with pytest.raises(UserError, match="must lie in 0..294"):
        apply_edits(levels_to_tiles(levels), np.array([295, 0]))
