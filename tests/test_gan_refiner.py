"""The cell refiner (clm.gan.refiner): a blind-spot model of each cell given
its neighbours, and Gibbs sweeps that refine a per-cell generator's samples."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clm.core.config import load_config
from clm.domains.levels import find_boxoban_dir
from clm.gan.refiner import CellRefiner, Refinement, attach, load_refiner, refine, save_refiner, train_refiner
from clm.gan.train import generate


def _one_hot(tiles: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(tiles, c).permute(0, 3, 1, 2).float()


def _uniform_grids(n: int, c: int = 2, hw: int = 6, seed: int = 0) -> torch.Tensor:
    """A corpus with one strong neighbour rule: every cell of a grid holds the same tile."""
    g = torch.Generator().manual_seed(seed)
    tiles = torch.randint(c, (n, 1, 1), generator=g).expand(n, hw, hw)
    return _one_hot(tiles, c)


def test_refiner_shapes_and_blind_spot():
    torch.manual_seed(0)
    R = CellRefiner(7, 10, 10, width=16, kernel=5).eval()
    x = _one_hot(torch.randint(7, (3, 10, 10)), 7)
    with torch.no_grad():
        out = R(x)
        assert out.shape == (3, 7, 10, 10)
        cells = torch.tensor([0, 11, 55, 99])
        assert torch.allclose(R.logits_at(x, cells), out.flatten(2)[..., cells], atol=1e-5)
        # the cell itself is masked out: changing it leaves its own logits as they were
        y = x.clone()
        y[:, :, 4, 4] = _one_hot(torch.full((3, 1, 1), 6), 7)[:, :, 0, 0]
        assert torch.allclose(R(y)[:, :, 4, 4], out[:, :, 4, 4], atol=1e-6)
        # ... and a cell three steps away (outside the 5x5 neighbourhood) does not reach it either
        z = x.clone()
        z[:, :, 4, 7] = _one_hot(torch.full((3, 1, 1), 6), 7)[:, :, 0, 0]
        assert torch.allclose(R(z)[:, :, 4, 4], out[:, :, 4, 4], atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        CellRefiner(7, 10, 10, kernel=4)


@pytest.mark.slow
def test_refiner_recovers_a_neighbour_rule_and_gibbs_sweeps_impose_it(tmp_path):
    torch.manual_seed(0)
    grids = _uniform_grids(512)
    R, ce = train_refiner(grids, steps=150, batch_size=64, width=16, kernel=3, seed=0)
    assert ce < 0.05  # the rule is deterministic given any neighbour
    test = _uniform_grids(64, seed=1)
    with torch.no_grad():
        assert torch.equal(R(test).argmax(1), test.argmax(1))
    # G: each cell tile 1 with probability 0.7, independently. Neighbours agree in a draw
    # 0.7^2 + 0.3^2 = 58% of the time; after Gibbs sweeps with the refiner, nearly always.
    probs = torch.tensor([0.3, 0.7]).view(1, 2, 1, 1).expand(400, 2, 6, 6).contiguous()
    gen = torch.Generator().manual_seed(0)

    def agreement(p: torch.Tensor) -> float:
        draw = torch.distributions.Categorical(probs=p.permute(0, 2, 3, 1)).sample()
        return float((draw[:, :, 1:] == draw[:, :, :-1]).float().mean())

    torch.manual_seed(1)
    before = agreement(probs)
    refined = refine(probs, R, sweeps=3, g_power=0.5, refiner_power=1.0, generator=gen)
    assert refined.shape == probs.shape and torch.allclose(refined.sum(1), torch.ones(400, 6, 6))
    after = agreement(refined)
    assert before < 0.65 and after > 0.9, (before, after)
    # saved and loaded, the same model
    save_refiner(R, tmp_path / "r.safetensors")
    R2 = load_refiner(tmp_path / "r.safetensors")
    with torch.no_grad():
        assert torch.equal(R2(test), R(test))


def test_refiner_off_gives_identical_output():
    from clm.gan.models import TileGenerator

    torch.manual_seed(0)
    G = TileGenerator(7, 8, 8, z_dim=8, width=8, arch="mlp")
    probs = torch.rand(5, 7, 8, 8).softmax(1)
    R = CellRefiner(7, 8, 8, width=8, kernel=3)
    assert refine(probs, R, sweeps=0) is probs
    a, _ = generate(G, 20, None, torch.device("cpu"), generator=torch.Generator().manual_seed(3))
    attach(G, Refinement(R, 1, 0.5, 0.5))
    b, _ = generate(G, 20, None, torch.device("cpu"), generator=torch.Generator().manual_seed(3))
    attach(G, None)
    c, _ = generate(G, 20, None, torch.device("cpu"), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, c) and not torch.equal(a, b)
    assert [n for n, _ in G.named_modules() if "refin" in n] == []  # never part of G's weights


@pytest.mark.slow
def test_short_levels_run_with_the_refiner(tmp_path):
    root = find_boxoban_dir()
    if root is None or not (root / "unfiltered" / "train").is_dir():
        pytest.skip("Boxoban corpus not found (set CLM_BOXOBAN_DIR to the folder holding unfiltered/)")
    from clm.gan.train import GanConfig, load_generator
    from clm.gan_adapters.domains import LevelsGan, train_gan

    cfg = load_config(GanConfig, None, [
        f"data=levels:{root / 'unfiltered' / 'train' / '000.txt'}", "arch=mlp", "steps=20", "batch_size=32",
        "max_levels=300", "classifier_epochs=1", "solve_samples=0", "eval_samples=100", "image_every=20",
        "threads=1", "refiner_sweeps=1", "refiner_steps=30"])
    s = train_gan(cfg, tmp_path, quiet=True)
    assert s["valid_fraction"] == 1.0 and np.isfinite(s["tile_kl"]) and s["refiner_seconds"] > 0
    assert (tmp_path / "refiner.safetensors").exists()
    G = load_generator(tmp_path, cfg, LevelsGan().load(cfg), torch.device("cpu"))
    assert getattr(G, "refinement", None) is not None and G.refinement.sweeps == 1
    (tmp_path / "refiner.safetensors").unlink()
    from clm.core.errors import UserError

    with pytest.raises(UserError, match="refiner.safetensors"):
        load_generator(tmp_path, cfg, LevelsGan().load(cfg), torch.device("cpu"))


def test_refiner_needs_tile_grids(tmp_path):
    from clm.core.errors import UserError
    from clm.gan.train import GanConfig
    from clm.gan_adapters.domains import train_gan

    with pytest.raises(UserError, match="refiner_sweeps and refiner_player_moves need tile grids"):
        train_gan(load_config(GanConfig, None, ["data=digits", "steps=1", "refiner_sweeps=1"]), tmp_path, quiet=True)
    with pytest.raises(UserError, match="refiner_kernel"):
        load_config(GanConfig, None, ["refiner_kernel=4"]).validate()


def test_pseudo_log_likelihood_matches_a_direct_sum():
    from clm.gan.refiner import pseudo_log_likelihood

    torch.manual_seed(0)
    R = CellRefiner(4, 5, 6, width=8, kernel=3).eval()
    tiles = torch.randint(4, (3, 5, 6))
    with torch.no_grad():
        lp = R(_one_hot(tiles, 4)).log_softmax(1)
    direct = [sum(float(lp[n, tiles[n, i, j], i, j]) for i in range(5) for j in range(6)) for n in range(3)]
    assert np.allclose(pseudo_log_likelihood(R, tiles.numpy()), direct, atol=1e-4)


def test_move_player_follows_the_score_and_keeps_levels_valid():
    from clm.domains.levels.decode import decode_levels, move_player
    from clm.domains.levels.level import PLAYER, PLAYER_ON_GOAL

    torch.manual_seed(2)
    levels = decode_levels((torch.randn(40, 7, 8, 8) * 0.5).softmax(1).numpy(), [2] * 40, rng=0)
    target = (3, 3)

    def score(tiles):  # high where the player stands on the target cell
        t = np.asarray(tiles)
        return 10.0 * ((t[:, 3, 3] == PLAYER) | (t[:, 3, 3] == PLAYER_ON_GOAL))

    moved = move_player(levels, score, moves=200, beta=1.0, rng=0)
    assert move_player(levels, score, moves=0) is levels
    open_target = [not lv.walls[target] and not lv.boxes[target] for lv in levels]
    for lv, mv, ok in zip(levels, moved, open_target):
        assert mv.problems() == []
        assert np.array_equal(lv.walls, mv.walls) and np.array_equal(lv.boxes, mv.boxes)
        assert np.array_equal(lv.goals, mv.goals)
        if not ok:
            assert mv.player != target
    assert sum(mv.player == target for mv, ok in zip(moved, open_target) if ok) >= 0.9 * sum(open_target)
