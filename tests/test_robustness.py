"""Robustness: perturbed levels keep what they must, the flip attack is the
best flip a direct search finds, and the training options do what they say."""

import json

import numpy as np
import pytest
import torch

from clm.cli.main import main
from clm.domains.levels import levels_to_onehot
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.level import FLOOR, WALL, levels_to_tiles
from clm.domains.levels.perturb import mirrored, moved_wall, random_symmetries, rotated
from clm.domains.levels.solver import solve_levels
from clm.levels_clm.robustness import d_robustness, flip_attack, inner_cells

LEVELS = generate_levels(12, size=7, n_boxes=2, seed=4)


def test_mirrors_and_quarter_turns_keep_solvability_and_optimal_pushes():
    base = [r.pushes for r in solve_levels(LEVELS)]
    assert all(p > 0 for p in base)
    for changed in (mirrored(LEVELS), rotated(LEVELS)):
        assert [r.pushes for r in solve_levels(changed)] == base
        assert all(a.key() != b.key() or np.array_equal(a.walls, b.walls) for a, b in zip(changed, LEVELS))
    four = LEVELS
    for _ in range(4):
        four = rotated(four)
    assert np.array_equal(levels_to_tiles(four), levels_to_tiles(LEVELS))  # four quarter turns: the level again
    assert np.array_equal(levels_to_tiles(mirrored(mirrored(LEVELS))), levels_to_tiles(LEVELS))


def test_random_symmetries_are_symmetries_of_each_level():
    tiles = levels_to_tiles(LEVELS)
    out = random_symmetries(tiles, np.random.default_rng(0))
    for t, o in zip(tiles, out):
        images = [np.rot90(m, k) for m in (t, t[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(o, im) for im in images)


def test_a_moved_wall_keeps_the_level_solvable_and_changes_two_inner_cells():
    edited, where = moved_wall(LEVELS, np.random.default_rng(1))
    assert len(edited) >= len(LEVELS) // 2 and len(edited) == len(where)
    assert all(r.solved for r in solve_levels(edited))
    for lv, i in zip(edited, where):
        src = LEVELS[i]
        diff = lv.walls != src.walls
        assert diff.sum() == 2 and not diff[0].any() and not diff[-1].any() and not diff[:, 0].any()
        assert (lv.walls & diff).sum() == 1 and (src.walls & diff).sum() == 1  # one wall opened, one made
        assert np.array_equal(lv.boxes, src.boxes) and np.array_equal(lv.goals, src.goals) and lv.player == src.player


class LinearD(torch.nn.Module):
    """A D whose logit is linear in its input: first order is exact, so the greedy
    attack must pick the best single flip that a direct search finds."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(0)))

    def forward(self, x, cond=None):
        return (x * self.w).sum(dim=(1, 2, 3)), None


def _flip(x, n, r, c):
    y = x.clone()
    a, b = (WALL, FLOOR) if y[n, WALL, r, c] > 0.5 else (FLOOR, WALL)
    y[n, a, r, c], y[n, b, r, c] = 0.0, 1.0
    return y


def test_the_flip_attack_finds_the_best_flip_of_a_direct_search():
    x = torch.from_numpy(levels_to_onehot(LEVELS[:4])).float()
    D = LinearD(x.shape[1:])
    movable = inner_cells(x)
    for direction in (-1.0, 1.0):
        got = flip_attack(D, x, 1, direction=direction, movable=movable)
        for n in range(len(x)):
            best = None
            for r in range(1, x.shape[2] - 1):
                for c in range(1, x.shape[3] - 1):
                    if x[n, WALL, r, c] + x[n, FLOOR, r, c] > 0.5:
                        v = direction * D(_flip(x, n, r, c)[n:n + 1])[0].item()
                        best = v if best is None else max(best, v)
            assert direction * D(got[n:n + 1])[0].item() == pytest.approx(best, abs=1e-4)
    got = flip_attack(D, x, 3, movable=movable)
    changed = (got != x).any(dim=1)
    assert changed.flatten(1).sum(1).tolist() == [3] * len(x)  # three distinct cells a grid
    assert ((got != x).any(dim=(0, 2, 3)).nonzero().flatten().tolist()) == [WALL, FLOOR]  # only walls and floor
    assert not changed[:, 0].any() and not changed[:, -1].any()  # the outer ring stays
    assert (D(got)[0] < D(x)[0]).all()
    assert all(p.grad is None and p.requires_grad for p in D.parameters())
    figures = d_robustness(D, LEVELS[:4], flips=(1, 2))
    assert figures["d_realism_clean"] > figures["d_realism_flip1"] > figures["d_realism_flip2"]


@pytest.mark.slow
def test_a_run_reports_robustness_with_every_option_on(tmp_path, capsys):
    from test_hybrid import TINY

    out = tmp_path / "r"
    assert main(["run", "--out", str(out), "--json", "report=false", *TINY, "robustness_eval=true",
                 "d_adversarial_flips=2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("player_solve_rate_clean", "player_solve_rate_noise", "player_solve_rate_wall_moved",
                "player_solve_rate_mirrored", "player_solve_rate_rotated", "player_solve_rate_perturbed",
                "d_realism_clean", "d_realism_flip3", "d_realism_drop"):
        assert 0.0 <= summary[key] <= 1.0 or key == "d_realism_drop", key
    assert summary["player_solve_rate_clean"] == summary["player_solve_rate"]  # the same greedy player, same levels
    assert main(["run", "--resume", str(out), "--json", "rounds=3"]) == 0  # the pool's generator resumes too
    assert json.loads((out / "summary.json").read_text())["exact_resume"] is True
    assert main(["run", "--out", str(tmp_path / "bad"), "d_adversarial_fraction=0"]) == 2


