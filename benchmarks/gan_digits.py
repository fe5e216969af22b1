"""Benchmark: our GAN against scikit-learn's classical generative models on
the 8x8 digits, on the same split and with the same metrics.

Baselines, fitted on the train split's pixels (64-d, scaled to [-1, 1]):
- GaussianMixture: full covariances, n_components picked by BIC from
  {5, 10, 20, 40} on the train split;
- KernelDensity: Gaussian kernel, bandwidth picked by 5-fold likelihood
  cross-validation on the train split (as in scikit-learn's digits example).
Samples are clipped to [-1, 1] (the pixel range). Each model draws as many
samples as there are training images; metrics: clm.gan.metrics.

Usage:  python benchmarks/gan_digits.py [--seeds 0 1 2] [--steps N] [--out DIR]
Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clm.core.config import load_config
from clm.core.runtime import set_threads
from clm.gan import metrics
from clm.gan_adapters.domains import load_gan_data
from clm.gan.train import GanConfig
from clm.gan_adapters.domains import train_gan

KEYS = ("fd_clf", "fd_clf_ratio", "precision", "recall", "density", "coverage", "novelty_mean",
        "memorised_fraction", "class_fraction_min", "class_fraction_max", "seconds")


def fit_gmm(x: np.ndarray, seed: int):
    from sklearn.mixture import GaussianMixture

    best, best_bic = None, np.inf
    for k in (5, 10, 20, 40):
        g = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed, max_iter=200).fit(x)
        bic = g.bic(x)
        if bic < best_bic:
            best, best_bic = g, bic
    return best


def fit_kde(x: np.ndarray, seed: int):
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    grid = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": np.logspace(-1.5, 0.5, 15)}, cv=5)
    return grid.fit(x).best_estimator_


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", help="keep the GAN run directories here (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", help="GanConfig key=value for the GAN (default config otherwise)")
    args = ap.parse_args(argv)
    set_threads(0)
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gan_digits_"))
    base.mkdir(parents=True, exist_ok=True)
    cfg0 = load_config(GanConfig, None, args.overrides)
    data = load_gan_data("digits", cfg0.test_fraction, cfg0.split_seed)
    cache = base / "classifier"
    ref = metrics.build_reference(data.train_x, data.train_y, data.test_x, data.test_y, data.n_classes, cache,
                                  data.key, cfg0.classifier_epochs, seed=cfg0.split_seed)
    train_flat = data.train_x.flatten(1).numpy().astype(np.float64)
    results: dict[str, list[dict]] = {"gan": [], "gmm": [], "kde": []}
    for seed in args.seeds:
        # our GAN, default config (plus any overrides), its own run directory
        run = base / f"gan-seed{seed}"
        shutil.rmtree(run, ignore_errors=True)
        (run / "classifier").mkdir(parents=True)
        for f in cache.iterdir():  # same feature classifier for every model
            shutil.copy(f, run / "classifier" / f.name)
        cfg = load_config(GanConfig, None, [*args.overrides, f"seed={seed}"])
        s = train_gan(cfg, run, quiet=True)
        results["gan"].append({**{k: s[k] for k in KEYS if k in s}, "seconds": s["wall_seconds"]})
        for name, fit in (("gmm", fit_gmm), ("kde", fit_kde)):
            t0 = time.perf_counter()
            model = fit(train_flat, seed)
            if name == "gmm":  # GaussianMixture draws from its own random_state (= seed)
                xs = model.sample(len(train_flat))[0]
            else:
                xs = model.sample(len(train_flat), random_state=seed)
            xs = np.clip(xs, -1, 1).astype(np.float32).reshape(-1, *data.shape)
            m = metrics.evaluate_samples(xs, ref)
            m["seconds"] = time.perf_counter() - t0
            if name == "gmm":
                m["n_components"] = int(model.n_components)
            else:
                m["bandwidth"] = float(model.bandwidth)
            results[name].append(m)
        print(f"seed {seed}: " + "  ".join(f"{n} fd_clf={results[n][-1]['fd_clf']:.2f}" for n in results),
              file=sys.stderr)

    def median(name: str, key: str) -> float:
        return float(np.median([r[key] for r in results[name]]))

    print(f"{'model':6s} " + " ".join(f"{k:>18s}" for k in KEYS))
    for name in results:
        print(f"{name:6s} " + " ".join(f"{median(name, k):18.4g}" for k in KEYS))
    out = {"benchmark": "gan_digits", "seeds": args.seeds, "fd_clf_floor": ref.fd_floor,
           "classifier_test_accuracy": ref.classifier_meta.get("test_accuracy"),
           "memorised_threshold": ref.memorised_threshold, "overrides": args.overrides,
           "median": {n: {k: median(n, k) for k in KEYS} for n in results}, "runs": results,
           "torch_threads": torch.get_num_threads()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
