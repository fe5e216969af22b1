"""GAN losses against values computed by hand on tiny tensors."""

import math

import pytest
import torch

from clm.domains.levels import patterns
from clm.gan import losses

LN3 = math.log(3.0)


def test_non_saturating_losses_match_the_seed_formulas():
    # D(x) = sigmoid(logit): real logits 0, ln 3 -> D = 0.5, 0.75; fake logit 0 -> D = 0.5
    real, fake = torch.tensor([0.0, LN3]), torch.tensor([0.0])
    # -J_D = -(E log D(x) + E log(1 - D(G)))
    expected_d = -((math.log(0.5) + math.log(0.75)) / 2) - math.log(0.5)
    assert losses.d_loss_ns(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    # -J_G = -E log D(G) with D(G) = 0.25 (logit -ln 3)
    assert losses.g_loss_ns(torch.tensor([-LN3])).item() == pytest.approx(-math.log(0.25), rel=1e-6)


def test_one_sided_label_smoothing_only_moves_the_real_target():
    real, fake = torch.tensor([LN3]), torch.tensor([-LN3])  # D(x) = 0.75, D(G) = 0.25
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25)) - math.log(0.75)
    assert losses.d_loss_ns(real, fake, real_target=0.9).item() == pytest.approx(expected, rel=1e-6)


def test_hinge_and_wasserstein_losses():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-0.5, 1.0])
    # mean(relu(1 - [0.5, 2])) + mean(relu(1 + [-0.5, 1])) = 0.25 + 1.25
    assert losses.d_loss_hinge(real, fake).item() == pytest.approx(1.5)
    assert losses.g_loss_hinge(fake).item() == pytest.approx(-0.25)
    assert losses.d_loss_wgan(real, fake).item() == pytest.approx(0.25 - 1.25)
    assert losses.d_loss("hinge", real, fake).item() == pytest.approx(1.5)
    assert losses.g_loss("wgan-gp", fake).item() == pytest.approx(-0.25)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    w = torch.tensor([3.0, 4.0])  # ||grad|| = 5 everywhere -> (5 - 1)^2 = 16
    gp = losses.gradient_penalty(lambda x: x @ w, torch.randn(8, 2), torch.randn(8, 2))
    assert gp.item() == pytest.approx(16.0, rel=1e-5)
    w = torch.tensor([0.6, 0.8])  # unit gradient -> no penalty
    assert losses.gradient_penalty(lambda x: x @ w, torch.randn(8, 2), torch.randn(8, 2)).item() == pytest.approx(0, abs=1e-6)


def test_feature_matching_is_the_squared_distance_of_feature_means():
    real = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # mean (1, 2)
    fake = torch.tensor([[1.0, -2.0], [-1.0, 2.0]])  # mean (0, 0)
    assert losses.feature_matching_loss(real, fake).item() == pytest.approx((1 + 4) / 2)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="unknown GAN loss 'lsgan'"):
        losses.d_loss("lsgan", torch.zeros(1), torch.zeros(1))


def _onehot(tiles: torch.Tensor, n: int = 7) -> torch.Tensor:
    return torch.nn.functional.one_hot(tiles, n).permute(0, 3, 1, 2).float()


def test_tile_pattern_histogram_counts_the_2x2_windows():
    g = torch.Generator().manual_seed(0)
    tiles = torch.randint(0, 7, (4, 6, 5), generator=g)
    h = patterns.tile_pattern_histogram(_onehot(tiles))
    direct = torch.zeros(7, 7, 7, 7)
    for t in tiles:
        for r in range(5):
            for c in range(4):
                direct[t[r, c], t[r, c + 1], t[r + 1, c], t[r + 1, c + 1]] += 1
    assert torch.allclose(h, direct / direct.sum(), atol=1e-7)


def test_pattern_matching_pushes_an_overused_pattern_down():
    # data: checkerboards of tiles 0/1; fakes: all 0 (a pattern the data lacks)
    board = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2
    pm = patterns.PatternMatching(_onehot(board.expand(8, 6, 6).clone()))
    logits = torch.zeros(8, 7, 6, 6, requires_grad=True)
    fake = torch.nn.functional.gumbel_softmax(logits, hard=True, dim=1)
    fake = _onehot(torch.zeros(8, 6, 6, dtype=torch.long)) + (fake - fake.detach())  # forward: all tile 0
    pm(fake).backward()
    assert pm.value > 5  # the all-0 window has probability ~eps in the data: a large KL
    assert logits.grad[:, 0].sum() > 0  # descending the loss lowers tile 0's logits
