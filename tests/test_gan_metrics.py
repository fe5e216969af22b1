"""Generative metrics against closed forms and direct loop computations."""

import numpy as np
import pytest

from clm.core.errors import UserError
from clm.gan import metrics


def test_frechet_distance_of_known_gaussians_matches_closed_form():
    # diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, c1 = np.zeros(2), np.diag([1.0, 4.0])
    mu2, c2 = np.ones(2), np.diag([4.0, 9.0])
    assert metrics.frechet_distance_stats(mu1, c1, mu2, c2) == pytest.approx(2 + 1 + 1, abs=1e-9)
    # general covariances: compare with scipy's matrix square root
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = a @ a.T + np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    direct = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(sqrtm(c1 @ c2)))
    assert metrics.frechet_distance_stats(m1, c1, m2, c2) == pytest.approx(direct, rel=1e-8)


def test_frechet_distance_of_samples_converges_to_the_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, size=(20000, 3))
    y = rng.normal(1.0, 2.0, size=(20000, 3))  # closed form: 3 * 1 + 3 * (1 - 2)^2 = 6
    assert metrics.frechet_distance(x, y) == pytest.approx(6.0, rel=0.03)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def _prdc_loop(real, fake, k):
    def kth(x):
        out = []
        for i in range(len(x)):
            d = sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)))
            out.append(d[k])  # d[0] is the point itself
        return np.array(out)

    rr, rf = kth(real), kth(fake)
    prec = np.mean([any(np.linalg.norm(f - r) <= rr[i] for i, r in enumerate(real)) for f in fake])
    rec = np.mean([any(np.linalg.norm(r - f) <= rf[j] for j, f in enumerate(fake)) for r in real])
    dens = sum(np.linalg.norm(f - r) <= rr[i] for f in fake for i, r in enumerate(real)) / (k * len(fake))
    cov = np.mean([min(np.linalg.norm(r - f) for f in fake) <= rr[i] for i, r in enumerate(real)])
    return {"precision": prec, "recall": rec, "density": dens, "coverage": cov}


def test_prdc_matches_a_direct_loop_and_identical_sets_score_one():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(0.5, 1.3, size=(35, 3))
    got, want = metrics.prdc(real, fake, k=3), _prdc_loop(real, fake, 3)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    same = metrics.prdc(real, real.copy(), k=3)
    assert same["coverage"] == 1.0 and same["precision"] == 1.0 and same["recall"] == 1.0
    far = metrics.prdc(real, real + 100.0, k=3)
    assert far["coverage"] == 0.0 and far["precision"] == 0.0


def test_novelty_and_memorisation():
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(200, 1, 2, 2)), rng.normal(size=(100, 1, 2, 2))
    thr = metrics.memorisation_threshold(test, train)
    copies = metrics.novelty_stats(train[:50], train, thr)
    assert copies["memorised_fraction"] == 1.0 and copies["novelty_mean"] < 1e-6
    fresh = metrics.novelty_stats(test, train, thr)
    assert fresh["memorised_fraction"] == pytest.approx(0.01, abs=0.011)  # 1st percentile by construction
    d = metrics.nearest_distances(test[:5], train)
    loop = [min(np.linalg.norm((t - r).ravel()) for r in train) for t in test[:5]]
    assert np.allclose(d, loop, atol=1e-5)


def test_bad_samples_are_named():
    with pytest.raises(UserError, match="empty"):
        metrics.check_samples(np.zeros((0, 1, 8, 8)), (1, 8, 8))
    with pytest.raises(UserError, match=r"shape \(1, 7, 7\)"):
        metrics.check_samples(np.zeros((3, 1, 7, 7)), (1, 8, 8))
    bad = np.zeros((3, 1, 8, 8))
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        metrics.check_samples(bad, (1, 8, 8))


def test_fid_with_missing_weights_is_a_clear_error():
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(UserError, match="does not exist.*other metrics still ran"):
        metrics.inception_fid_kid(x, x, "/nonexistent/pt_inception.pth")
