"""The tile-grid GAN: straight-through Gumbel samples, the decoder's
validity guarantee, and a short run on Boxoban levels (skipped without the
corpus)."""

import numpy as np
import pytest
import torch

from clm.core.config import load_config
from clm.domains.levels import find_boxoban_dir
from clm.domains.levels.decode import decode_level, decode_levels, raw_levels
from clm.gan.models import TileGenerator


@pytest.mark.parametrize("sample", ["gumbel", "argmax"])
def test_tile_generator_gives_one_hot_grids_with_gradients(sample):
    torch.manual_seed(0)
    G = TileGenerator(7, 10, 10, z_dim=8, width=8, arch="mlp", sample=sample)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, 7, 10, 10)
    assert torch.equal(x.sum(1), torch.ones(4, 10, 10)) and set(x.unique().tolist()) <= {0.0, 1.0}
    # straight-through: a loss on the hard one-hot still reaches G's weights
    (x[:, 3] * torch.randn(4, 10, 10)).sum().backward()
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    if sample == "argmax":  # the forward value is the most probable tile
        z = torch.randn(3, 8)
        assert torch.equal(G(z).argmax(1), G.probs(z).argmax(1))


@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0])
def test_decoder_always_gives_structurally_valid_levels(scale):
    torch.manual_seed(1)
    probs = (torch.randn(300, 7, 10, 10) * scale).softmax(1).numpy()
    probs[:100, 0] += 3.0  # mostly walls: the decoder must open a room
    probs[100:150, 5] += 3.0  # players everywhere: still exactly one
    for lv in decode_levels(probs):
        assert lv.problems() == [], (lv.problems(), lv.to_text())
        assert lv.n_boxes == lv.n_goals >= 1


def test_decoder_keeps_the_most_probable_cells_and_the_asked_box_count():
    p = np.zeros((7, 6, 6))
    p[0] = 1.0
    p[:, 1:-1, 1:-1] = 0
    p[1, 1:-1, 1:-1] = 1.0  # an open 4x4 room
    p[5, 2, 2] = 5.0  # player
    p[3, 3, 3] = 4.0  # box
    p[2, 4, 4] = 4.0  # goal
    p = p / p.sum(0, keepdims=True)
    lv = decode_level(p)
    assert lv.player == (2, 2) and lv.boxes[3, 3] and lv.goals[4, 4] and lv.n_boxes == 1
    assert decode_level(p, n_boxes=3).n_boxes == 3


def _room(size=6):
    p = np.zeros((7, size, size))
    p[0] = 1.0
    p[:, 1:-1, 1:-1] = 0
    p[1, 1:-1, 1:-1] = 1.0  # an open room
    p[5, 2, 2] = 5.0  # player
    return p


def test_decoder_puts_a_box_on_a_goal_only_where_g_expects_one():
    p = _room()
    p[3, 3, 3] = p[2, 3, 3] = 3.0  # box and goal both likeliest on one cell, box-on-goal unlikely
    p[2, 4, 3] = 1.5
    lv = decode_level(p / p.sum(0, keepdims=True))
    assert lv.boxes[3, 3] and not lv.goals[3, 3] and lv.goals[4, 3]
    p[4, 3, 3] = 40.0  # now G expects a box on a goal there
    p[3, 3, 2] = 2.5  # and a second box
    lv = decode_level(p / p.sum(0, keepdims=True), n_boxes=2)
    assert lv.boxes[3, 3] and lv.goals[3, 3] and lv.boxes[3, 2] and lv.goals[4, 3] and lv.n_boxes == 2
    lv = decode_level(p / p.sum(0, keepdims=True), n_boxes=1)  # one box: never start solved
    assert not (lv.boxes & lv.goals).any()


def test_decoder_keeps_boxes_out_of_corners_off_goals():
    p = _room()
    p[3, 1, 4] = 3.0  # likeliest box cell: the room's top-right corner
    p[3, 3, 3] = 2.0
    lv = decode_level(p / p.sum(0, keepdims=True), n_boxes=1)
    assert lv.boxes[3, 3] and not lv.boxes[1, 4]


def test_raw_levels_flags_invalid_grids():
    tiles = np.ones((2, 5, 5), np.int64)  # all floor: no player
    tiles[1, :, :] = 0
    tiles[1, 1:4, 1:4] = 1
    tiles[1, 2, 2], tiles[1, 1, 1], tiles[1, 3, 3] = 5, 3, 2
    onehot = np.eye(7)[tiles].transpose(0, 3, 1, 2)
    levels, valid = raw_levels(onehot)
    assert levels[0] is None and not valid[0]
    assert levels[1] is not None and valid[1]


@pytest.mark.slow
def test_short_levels_run_on_boxoban(tmp_path):
    root = find_boxoban_dir()
    if root is None or not (root / "unfiltered" / "train").is_dir():
        pytest.skip("Boxoban corpus not found (set CLM_BOXOBAN_DIR to the folder holding unfiltered/)")
    from clm.gan.train import GanConfig
    from clm.gan_adapters.domains import train_gan

    cfg = load_config(GanConfig, None, [
        f"data=levels:{root / 'unfiltered' / 'train' / '000.txt'}", "arch=mlp", "steps=60", "batch_size=32",
        "max_levels=400", "classifier_epochs=3", "solve_samples=5", "solve_time_limit=0.5", "eval_samples=200",
        "image_every=60", "threads=1", "diffaug=flip"])
    s = train_gan(cfg, tmp_path, quiet=True)
    assert s["valid_fraction"] == 1.0
    for key in ("tile_kl", "tile_kl_floor", "duplicate_fraction", "fd_clf", "coverage", "solvable_fraction",
                "raw_valid_fraction", "novelty_mean", "memorised_fraction"):
        assert np.isfinite(s[key]), key
    assert 0.0 <= s["duplicate_fraction"] <= 1.0


def test_decoder_does_not_freeze_two_boxes_against_a_wall():
    p = _room()
    p[3, 1, 2] = p[3, 1, 3] = 3.0  # the two likeliest box cells: side by side along the top wall
    p[3, 3, 3] = 2.0
    lv = decode_level(p / p.sum(0, keepdims=True), n_boxes=2)
    assert lv.boxes[1, 2] and lv.boxes[3, 3] and not lv.boxes[1, 3]


def test_drawn_decoding_follows_g_probabilities():
    p = _room()
    p[3, 2, 3], p[3, 3, 3] = 6.0, 2.0  # box mass 3:1 between two cells (others ~0)
    p = p / p.sum(0, keepdims=True)
    rng = np.random.default_rng(0)
    at_first = np.mean([decode_level(p, n_boxes=1, rng=rng).boxes[2, 3] for _ in range(2000)])
    box = p[3, 1:-1, 1:-1].copy()
    box[1, 1] = 0.0  # the player's cell
    expected = p[3, 2, 3] / box.sum()  # Gumbel top-1 = a draw in proportion to p
    assert abs(at_first - expected) < 0.04
    assert decode_level(p, n_boxes=1).boxes[2, 3]  # without rng: the most probable cell, always


def test_decoder_joins_a_second_open_region_through_the_likeliest_wall():
    p = _room(7)
    p[1, 1:-1, 3] = 0.0
    p[0, 1:-1, 3] = 1.0  # a wall column splits the room in two
    p[0, 4, 3], p[1, 4, 3] = 0.55, 0.45  # still a wall, but the likeliest one to be open
    lv = decode_level(p / p.sum(0, keepdims=True))
    room = ~lv.walls
    assert room[1:-1, 4:-1].all() and room[1:-1, 1:3].all()  # both halves kept
    assert room[4, 3] and not room[[1, 2, 3, 5], 3].any()  # joined through the one cell


def test_room_size_threshold_opens_the_corpus_share_of_cells():
    from clm.domains.levels.decode import room_size_threshold

    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=(50, 8, 8)).transpose(0, 3, 1, 2)
    # a spatially smooth p(wall), as a trained G's is (rooms, not speckle)
    field = gaussian_filter(rng.normal(size=(50, 8, 8)), sigma=(0, 1.5, 1.5))
    p_wall = 1 / (1 + np.exp(-8 * field))
    p[:, 1:] *= ((1 - p_wall) / p[:, 1:].sum(1))[:, None]
    p[:, 0] = p_wall
    t = room_size_threshold(p, 0.3)
    logit = np.log(p[:, 0, 1:-1, 1:-1]) - np.log1p(-p[:, 0, 1:-1, 1:-1])
    assert abs((logit < t).mean() - 0.3) < 0.01
    lv = decode_levels(p, wall_threshold=t)  # the decoder's room sizes follow (joining adds a few cells)
    assert 0.3 <= np.mean([(~lev.walls[1:-1, 1:-1]).mean() for lev in lv]) <= 0.4
    t_drawn = room_size_threshold(p, 0.3, rng=0, temperature=0.3)
    lv = decode_levels(p, wall_threshold=t_drawn, wall_temperature=0.3, rng=1)
    assert 0.3 <= np.mean([(~lev.walls[1:-1, 1:-1]).mean() for lev in lv]) <= 0.4
    for lv in decode_levels(p[:5], wall_threshold=t, rng=1):
        assert lv.is_valid()
    with pytest.raises(ValueError, match="open_fraction"):
        room_size_threshold(p, 1.5)


@pytest.mark.parametrize("hw", [(7, 7), (10, 10), (6, 9)])
def test_resconv_pair_works_at_the_grid_resolution(hw):
    from clm.gan.models import ImageDiscriminator

    torch.manual_seed(0)
    h, w = hw
    G = TileGenerator(7, h, w, z_dim=8, width=16, cond_dim=3, arch="resconv", res_blocks=2)
    D = ImageDiscriminator((7, h, w), 16, 3, "resconv", spectral_norm=True, minibatch_std=True, res_blocks=1)
    c = torch.eye(3)[[0, 1, 2, 0]]
    x = G(torch.randn(4, 8), c)
    assert x.shape == (4, 7, h, w) and torch.equal(x.sum(1), torch.ones(4, h, w))
    logit, feats = D(x, c)
    assert logit.shape == (4,) and feats.shape == (4, 8 * h * w)
    logit.sum().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)
    # no layer changes the resolution: every conv of G's body keeps H x W
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
             for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    G(torch.randn(2, 8), c[:2])
    for hk in hooks:
        hk.remove()
    assert shapes and set(shapes) == {(h, w)}


@pytest.mark.slow
def test_resconv_g_learns_boxoban_patterns(tmp_path):
    """A short resconv run: the decoded samples' tile-pattern KL falls well
    below the untrained G's."""
    root = find_boxoban_dir()
    if root is None or not (root / "unfiltered" / "train").is_dir():
        pytest.skip("Boxoban corpus not found (set CLM_BOXOBAN_DIR to the folder holding unfiltered/)")
    from clm.gan.train import GanConfig
    from clm.gan_adapters.domains import train_gan

    args = [f"data=levels:{root / 'unfiltered' / 'train' / '000.txt'}", "arch=resconv", "g_width=32", "d_width=16",
            "res_blocks=2", "batch_size=32", "max_levels=400", "classifier_epochs=2", "solve_samples=0",
            "eval_samples=200", "image_every=1000", "threads=1"]
    untrained = train_gan(load_config(GanConfig, None, [*args, "steps=0"]), tmp_path / "u", quiet=True)
    trained = train_gan(load_config(GanConfig, None, [*args, "steps=300", "lr_g=1e-3", "lr_d=1e-3"]), tmp_path / "t",
                    quiet=True)
    assert trained["valid_fraction"] == 1.0
    assert trained["tile_kl"] < 0.5 * untrained["tile_kl"], (trained["tile_kl"], untrained["tile_kl"])


def test_live_cells_match_a_direct_search():
    """live_cells against a plain breadth-first search of box pushes (the
    box may reach a goal: each push needs the far cell free and the player's
    cell behind the box free, walls only)."""
    from collections import deque

    from clm.domains.levels.solver import live_cells

    rng = np.random.default_rng(3)
    for _ in range(30):
        walls = rng.random((7, 8)) < 0.3
        walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
        free = np.argwhere(~walls)
        if len(free) < 2:
            continue
        goals = np.zeros_like(walls)
        for r, c in free[rng.choice(len(free), 2, replace=False)]:
            goals[r, c] = True
        want = np.zeros_like(walls)
        for r, c in free:
            seen, queue = {(r, c)}, deque([(r, c)])
            while queue:
                y, x = queue.popleft()
                if goals[y, x]:
                    want[r, c] = True
                    break
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ny, nx, py, px = y + dy, x + dx, y - dy, x - dx
                    if not walls[ny, nx] and not walls[py, px] and (ny, nx) not in seen:
                        seen.add((ny, nx))
                        queue.append((ny, nx))
        assert np.array_equal(live_cells(walls, goals), want)


def test_live_box_decoding_puts_boxes_on_live_cells_only():
    from clm.domains.levels.solver import live_cells

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=(40, 10, 10)).transpose(0, 3, 1, 2)
    for lv in decode_levels(probs, [3] * 40, rng=1, live_boxes=True):
        assert lv.is_valid()
        live = live_cells(lv.walls, lv.goals)
        assert live[lv.boxes & ~lv.goals].all() or lv.n_boxes > live.sum()


def test_best_of_k_keeps_the_candidate_d_scores_highest():
    from clm.domains.levels import Level
    from clm.gan_adapters.domains import best_of_k

    class CountsBoxesInRowOne(torch.nn.Module):  # a stand-in D whose score is known: boxes in row 1
        def forward(self, x, cond=None):
            return x[:, 3, 1].sum(1) + x[:, 4, 1].sum(1), None

    levels = []
    for n_top in (0, 2, 1, 1, 0, 0):  # two groups of three
        walls = np.ones((5, 6), bool)
        walls[1:4, 1:5] = False
        boxes = np.zeros((5, 6), bool)
        boxes[1, 1:1 + n_top] = True
        boxes[3, 1:3 - n_top] = True
        goals = np.zeros((5, 6), bool)
        goals[2, 1:3] = True
        levels.append(Level(walls, goals, boxes, (3, 4)))
    keep = best_of_k(levels, None, CountsBoxesInRowOne(), 3, torch.device("cpu"))
    assert keep.tolist() == [1, 3]
    with pytest.raises(ValueError):
        best_of_k(levels[:5], None, CountsBoxesInRowOne(), 3, torch.device("cpu"))


def test_refine_blocks_keep_shapes_and_change_the_output():
    torch.manual_seed(0)
    plain = TileGenerator(7, 7, 7, z_dim=8, width=16, arch="mlp")
    torch.manual_seed(0)
    refined = TileGenerator(7, 7, 7, z_dim=8, width=16, arch="mlp", refine_blocks=1)
    z = torch.randn(5, 8)
    plain.eval(), refined.eval()
    a, b = plain.logits(z), refined.logits(z)
    assert a.shape == b.shape == (5, 7, 7, 7)
    # the same MLP underneath (same seed, built first): the refinement adds a correction
    assert not torch.allclose(a, b)
    assert torch.allclose(b - refined.backbone.refine(a), a, atol=1e-5)


def test_mixed_sizes_and_a_too_small_corpus_are_clear_errors(tmp_path):
    from clm.core.errors import UserError
    from clm.gan.train import GanConfig
    from clm.gan_adapters.domains import train_gan

    mixed = tmp_path / "mixed.txt"
    mixed.write_text("; a\n#####\n#@$.#\n#####\n\n; b\n#####\n#@$.#\n#####\n\n; c\n######\n#@$. #\n######\n")
    with pytest.raises(UserError, match=r"mixed.txt: levels of several sizes \(2 of 3x5, 1 of 3x6; e.g. level '.*c' is 3x6"):
        train_gan(load_config(GanConfig, None, [f"data=levels:{mixed}", "steps=1"]), tmp_path / "r1", quiet=True)
    small = tmp_path / "small.txt"
    small.write_text("".join(f"; {i}\n#####\n#@$.#\n#   #\n#####\n\n" for i in range(12)))
    with pytest.raises(UserError, match=r"training items .* fewer than batch_size=128") as e:
        train_gan(load_config(GanConfig, None, [f"data=levels:{small}", "steps=1", "test_fraction=0.25"]),
                  tmp_path / "r2", quiet=True)
    assert e.value.exit_code == 2
