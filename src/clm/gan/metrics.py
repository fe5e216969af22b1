"""Generative metrics: FD-clf, precision/recall/density/coverage, novelty,
memorisation, class balance, and the optional torch-fidelity FID/KID.

Conventions (one place, used by training, ``clm gan eval`` and benchmarks):
- ``real`` is the held-out *test* split; the generator is trained on *train*.
- FD-clf = Frechet distance between classifier features of generated samples
  and of the test split. Its floor is the same distance between the *train*
  split and the test split, and ``fd_clf_ratio = fd_clf / fd_clf_floor``; the
  generated set has as many samples as the train split, so both distances
  carry the same finite-sample bias.
- Novelty = L2 distance (in data space) from a generated sample to its nearest
  training example. A sample is *memorised* when that distance is below the
  1st percentile of the same distance for real test examples (which the
  generator never saw): by construction 1% of real held-out data counts as
  "memorised", so a generator that copies its training set scores far above.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from clm.core.errors import UserError

MEMORISED_PERCENTILE = 1.0


# ----------------------------------------------------------------------------------------------
# Frechet distance
def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, F) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats needs (N >= 2, F) features, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_stats(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Tr((C1 C2)^(1/2)) is computed as the sum of square roots of the eigenvalues
    of the symmetric PSD matrix C1^(1/2) C2 C1^(1/2) (same spectrum as C1 C2),
    which is exact and avoids scipy.sqrtm's complex round-off.
    """
    s1 = _sqrt_psd(np.atleast_2d(cov1))
    m = s1 @ np.atleast_2d(cov2) @ s1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    return frechet_distance_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


# ----------------------------------------------------------------------------------------------
# Precision, recall, density, coverage (Naeem et al. 2020)
def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ta, tb = torch.as_tensor(np.asarray(a, np.float64)), torch.as_tensor(np.asarray(b, np.float64))
    return torch.cdist(ta, tb).numpy()


def _kth_nn_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    # the k-th smallest excluding the point itself (distance 0 at index 0 after sorting)
    return np.partition(d, k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real``
    with k-nearest-neighbour balls (Naeem et al. 2020), fully vectorised.

    precision: share of fake samples inside some real sample's k-NN ball;
    recall: share of real samples inside some fake sample's k-NN ball;
    density: mean number of real balls holding a fake sample, divided by k;
    coverage: share of real samples whose ball holds at least one fake sample.
    """
    real, fake = np.asarray(real), np.asarray(fake)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"prdc needs more than k={k} samples on each side, got {len(real)} real and {len(fake)} fake")
    r_real = _kth_nn_radius(real, k)
    r_fake = _kth_nn_radius(fake, k)
    d = _pairwise(real, fake)  # (N_real, N_fake)
    inside_real = d <= r_real[:, None]
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum() / (k * fake.shape[0])),
        "coverage": float((d.min(1) <= r_real).mean()),
    }


class RealManifold:
    """Per-sample precision (Kynkaanniemi et al. 2019, "Improved Precision and
    Recall"): a sample is on the real manifold when its features lie inside
    the k-nearest-neighbour ball of some real sample. Unlike a classifier's
    confidence, which is often high far from the data, it says whether a
    sample looks like something real."""

    def __init__(self, real_features: np.ndarray, k: int = 5):
        self.real = np.asarray(real_features, np.float64)
        if len(self.real) <= k:
            raise ValueError(f"RealManifold needs more than k={k} real samples, got {len(self.real)}")
        self.radius = _kth_nn_radius(self.real, k)

    def contains(self, features: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """(N,) bool: which samples lie inside some real sample's ball."""
        f = np.asarray(features, np.float64)
        return np.concatenate([(_pairwise(self.real, f[i:i + chunk]) <= self.radius[:, None]).any(0)
                               for i in range(0, len(f), chunk)]) if len(f) else np.zeros(0, bool)


# ----------------------------------------------------------------------------------------------
# Novelty and memorisation
def nearest_distances(queries: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """L2 distance from each query (flattened) to its nearest reference row."""
    q = torch.as_tensor(np.asarray(queries, np.float64)).flatten(1)
    r = torch.as_tensor(np.asarray(reference, np.float64)).flatten(1)
    return torch.cat([torch.cdist(q[i:i + chunk], r).min(1).values for i in range(0, len(q), chunk)]).numpy()


def memorisation_threshold(test: np.ndarray, train: np.ndarray, percentile: float = MEMORISED_PERCENTILE) -> float:
    """The ``percentile``-th percentile of real test-to-train nearest distances."""
    return float(np.percentile(nearest_distances(test, train), percentile))


def novelty_stats(samples: np.ndarray, train: np.ndarray, threshold: float) -> dict[str, float]:
    d = nearest_distances(samples, train)
    return {"novelty_mean": float(d.mean()), "novelty_median": float(np.median(d)),
            "memorised_fraction": float((d < threshold).mean())}


# ----------------------------------------------------------------------------------------------
# The feature classifier behind FD-clf
class FeatureClassifier(nn.Module):
    """A small CNN: two 3x3 conv layers (the second strided), a ``feature_dim``
    penultimate layer (the FD-clf features) and a linear class head."""

    def __init__(self, shape: tuple[int, int, int], n_classes: int, feature_dim: int = 64, width: int = 32):
        super().__init__()
        c, h, w = shape
        self.shape, self.n_classes, self.feature_dim = tuple(shape), n_classes, feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(True), nn.Flatten(),
            nn.Linear(2 * width * ((h + 1) // 2) * ((w + 1) // 2), feature_dim), nn.ReLU(True))
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, n_classes: int, epochs: int = 30,
                     seed: int = 0, batch_size: int = 64, lr: float = 2e-3) -> FeatureClassifier:
    """Train the feature classifier on the real training split (its own
    generator, so it does not disturb the caller's RNG stream)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FeatureClassifier(tuple(train_x.shape[1:]), n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    x, y = train_x.float().cpu(), train_y.long().cpu()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def classifier_outputs(model: FeatureClassifier, x: torch.Tensor, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F), predicted class (N,)) for a batch of data."""
    feats, preds = [], []
    model = model.eval()
    for i in range(0, len(x), batch):
        f = model.features(x[i:i + batch].float().cpu())
        feats.append(f)
        preds.append(model.head(f).argmax(1))
    return torch.cat(feats).numpy().astype(np.float64), torch.cat(preds).numpy()


def load_or_train_classifier(cache_dir: Path | None, key: str, train_x: torch.Tensor, train_y: torch.Tensor,
                             n_classes: int, test_x: torch.Tensor | None = None, test_y: torch.Tensor | None = None,
                             epochs: int = 30, seed: int = 0) -> tuple[FeatureClassifier, dict[str, Any]]:
    """The FD-clf classifier for data set ``key``, cached as safetensors in
    ``cache_dir`` (the run directory's ``classifier/``) so eval and resume
    reuse exactly the same feature space."""
    shape = tuple(train_x.shape[1:])
    if cache_dir is not None:
        wpath, mpath = Path(cache_dir) / f"{key}.safetensors", Path(cache_dir) / f"{key}.json"
        if wpath.is_file() and mpath.is_file():
            meta = json.loads(mpath.read_text())
            model = FeatureClassifier(shape, n_classes)
            try:
                model.load_state_dict(load_file(str(wpath)))
                return model.eval(), meta
            except Exception:  # corrupt or from an older layout: retrain below
                pass
    model = train_classifier(train_x, train_y, n_classes, epochs=epochs, seed=seed)
    meta: dict[str, Any] = {"key": key, "epochs": epochs, "seed": seed}
    if test_x is not None and test_y is not None:
        _, pred = classifier_outputs(model, test_x)
        meta["test_accuracy"] = float((pred == test_y.numpy()).mean())
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(wpath))
        mpath.write_text(json.dumps(meta) + "\n")
    return model, meta


# ----------------------------------------------------------------------------------------------
# The whole report for one generated batch
@dataclass
class Reference:
    """What every evaluation of one data set compares against, computed once."""

    classifier: FeatureClassifier
    classifier_meta: dict[str, Any]
    train_x: np.ndarray
    test_x: np.ndarray
    test_features: np.ndarray
    test_stats: tuple[np.ndarray, np.ndarray]
    fd_floor: float
    floor_prdc: dict[str, float]
    memorised_threshold: float
    n_classes: int
    prdc_k: int = 5


def check_samples(x: torch.Tensor | np.ndarray, shape: tuple[int, ...], name: str = "samples") -> np.ndarray:
    """Reject a sample batch of the wrong shape, empty, or with NaN/inf."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    if a.ndim == 0 or len(a) == 0:
        raise UserError(f"{name} are empty: nothing to evaluate")
    if tuple(a.shape[1:]) != tuple(shape):
        raise UserError(f"{name} have shape {tuple(a.shape[1:])} per item, the data set has {tuple(shape)}")
    if not np.isfinite(a).all():
        raise UserError(f"{name} hold NaN or infinite values: the generator has diverged")
    return a


def build_reference(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                    n_classes: int, cache_dir: Path | None, key: str, classifier_epochs: int = 30,
                    seed: int = 0, prdc_k: int = 5, n_eval: int = 0,
                    compute_threshold: bool = True) -> Reference:
    """Train (or load) the classifier and compute the real-vs-real floors.

    ``n_eval``: the number of generated samples that will be evaluated; the
    floors use a fixed random subset of that many training examples (all of
    them when ``n_eval`` is 0 or larger), so floor and metric share sample size.
    """
    clf, meta = load_or_train_classifier(cache_dir, key, train_x, train_y, n_classes, test_x, test_y,
                                         epochs=classifier_epochs, seed=seed)
    floor_x = train_x
    if 0 < n_eval < len(train_x):
        floor_x = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n_eval]]
    train_f, _ = classifier_outputs(clf, floor_x)
    test_f, _ = classifier_outputs(clf, test_x)
    test_stats = gaussian_stats(test_f)
    floor = frechet_distance_stats(*gaussian_stats(train_f), *test_stats)
    tr, te = train_x.numpy(), test_x.numpy()
    return Reference(clf, meta, tr, te, test_f, test_stats, floor, prdc(test_f, train_f, prdc_k),
                     memorisation_threshold(te, tr) if compute_threshold else float("nan"), n_classes, prdc_k)


def evaluate_samples(samples: torch.Tensor | np.ndarray, ref: Reference,
                     class_balance: bool = True, novelty: bool = True) -> dict[str, float]:
    """All metrics of one generated batch against ``ref`` (flat dict)."""
    x = check_samples(samples, ref.train_x.shape[1:])
    feats, pred = classifier_outputs(ref.classifier, torch.from_numpy(x))
    fd = frechet_distance_stats(*gaussian_stats(feats), *ref.test_stats)
    out: dict[str, float] = {
        "fd_clf": fd, "fd_clf_floor": ref.fd_floor,
        "fd_clf_ratio": fd / ref.fd_floor if ref.fd_floor > 0 else math.inf,
    }
    out.update(prdc(ref.test_features, feats, ref.prdc_k))
    out.update({f"{k}_floor": v for k, v in ref.floor_prdc.items()})
    if novelty:
        out.update(novelty_stats(x, ref.train_x, ref.memorised_threshold))
        out["memorised_threshold"] = ref.memorised_threshold
    if class_balance:
        frac = np.bincount(pred, minlength=ref.n_classes) / len(pred)
        out.update({f"class_fraction_{c}": float(f) for c, f in enumerate(frac)})
        out["class_fraction_min"], out["class_fraction_max"] = float(frac.min()), float(frac.max())
    if "test_accuracy" in ref.classifier_meta:
        out["classifier_test_accuracy"] = ref.classifier_meta["test_accuracy"]
    return out


# ----------------------------------------------------------------------------------------------
# Optional Inception FID/KID via torch-fidelity
def inception_fid_kid(samples: np.ndarray, real: np.ndarray, weights_path: str, cuda: bool = False) -> dict[str, Any]:
    """FID and KID from torch-fidelity's InceptionV3, with the weights file the
    user gives (nothing is downloaded). Images in [-1, 1], 1 or 3 channels.

    Raises UserError when the weights file is missing or torch-fidelity is
    absent or rejects the weights; callers report that and go on.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise UserError(f"FID weights file {path} does not exist (give torch-fidelity's "
                        "pt_inception-2015-12-05 weights as fid_weights=PATH); FD-clf and the other metrics still ran")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise UserError("FID/KID need the torch-fidelity package, which is not installed "
                        "(pip install torch-fidelity); FD-clf and the other metrics still ran")

    class _Images(torch.utils.data.Dataset):
        def __init__(self, a: np.ndarray):
            t = torch.from_numpy(np.asarray(a, np.float32))
            if t.shape[1] == 1:
                t = t.expand(-1, 3, -1, -1)
            self.x = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.x[i]

    try:
        res = torch_fidelity.calculate_metrics(
            input1=_Images(samples), input2=_Images(real), cuda=cuda, fid=True, kid=True, verbose=False,
            feature_extractor_weights_path=str(path), kid_subset_size=min(1000, len(samples), len(real)))
    except Exception as e:  # a wrong file surfaces as many kinds of error inside torch-fidelity
        raise UserError(f"torch-fidelity could not use FID weights {path}: {type(e).__name__}: {e}; "
                        "FD-clf and the other metrics still ran")
    return {"fid_inception": float(res["frechet_inception_distance"]),
            "kid_inception": float(res["kernel_inception_distance_mean"]),
            "fid_implementation": f"torch-fidelity {getattr(torch_fidelity, '__version__', '?')} InceptionV3 ({path.name})"}
