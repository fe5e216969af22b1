"""Benchmark: the tile-grid GAN on Boxoban levels (unfiltered train), with
the reference = Boxoban unfiltered valid.

Reports, for each generator variant's decoded samples: tile-pattern KL (2x2)
against the training corpus and its floor (valid vs train), validity of
decoded and of raw (argmax, unrepaired) samples, duplicates of training
levels, Hamming novelty, diversity, FD-clf and coverage on the level
classifier's features, the solvable fraction of decoded and raw samples
(exact solver, time limit per level stated in the output) and wall time.
Side by side, in the same run: the variants given (default: the per-cell MLP
G of issue 5, and the joint G of issue 13), and the project's classic
generator as a non-learned reference (its own tile_kl to Boxoban).

Usage:
    python benchmarks/gan_levels.py [--seeds 0 1 2] [--out DIR]
        [--variant LABEL "key=value ..."] ... [key=value ...]
``key=value`` after the options is added to every variant. The last line
printed is one JSON object with every figure (medians over seeds per variant).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clm.core.config import load_config
from clm.core.errors import UserError
from clm.domains.levels import find_boxoban_dir
from clm.gan.train import GanConfig
from clm.gan_adapters.domains import train_gan

KEYS = ("tile_kl", "tile_kl_floor", "tile_kl_ratio", "tile_kl_raw", "valid_fraction", "raw_valid_fraction",
        "duplicate_fraction", "self_duplicate_fraction", "novelty_mean", "memorised_fraction", "diversity",
        "diversity_floor", "fd_clf", "fd_clf_ratio", "coverage", "precision", "solvable_fraction",
        "raw_solvable_fraction", "mean_boxes", "refiner_seconds", "wall_seconds")

DEFAULTS = ["steps=3000", "eval_samples=2000", "classifier_epochs=5",
            "solve_samples=100", "solve_time_limit=1.0"]

#: the variants compared by default: issue 5's per-cell MLP G, and the joint G (issue 13); the same MLP G with
#: two Gibbs sweeps of the learned cell refiner over its samples (clm.gan.refiner) and 30 Metropolis-Hastings
#: moves of each decoded level's player scored by the same refiner
VARIANTS = {
    "mlp_per_cell": "",
    "mlp_refined_joint": "refine_blocks=1",
    "mlp_cell_refiner": "refiner_sweeps=2 refiner_player_moves=30",
}


def classic_reference(root: Path, n: int, seed: int, solve: int, time_limit: float) -> dict:
    """The project's classic generator (10x10, 4 boxes) against Boxoban train: a non-learned reference."""
    from clm.domains.levels import metrics as lm
    from clm.domains.levels import read_levels
    from clm.domains.levels.generator import generate_levels

    train_levels = list(read_levels(root / "unfiltered" / "train"))
    t = time.perf_counter()
    levels = generate_levels(n, size=10, n_boxes=4, seed=seed)
    wall = time.perf_counter() - t
    test_levels = list(read_levels(root / "unfiltered" / "valid"))
    kl, floor = lm.tile_pattern_kl(levels, train_levels), lm.tile_pattern_kl(test_levels, train_levels)
    return {"tile_kl": kl, "tile_kl_floor": floor, "tile_kl_ratio": kl / floor, "valid_fraction":
            float(np.mean([lv.is_valid() for lv in levels])), "duplicate_fraction":
            lm.duplicate_fraction(levels, train_levels), "diversity": lm.diversity(levels),
            "solvable_fraction": lm.playable_fraction(levels[:solve], time_limit=time_limit),
            "wall_seconds": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("LABEL", "OVERRIDES"),
                    help="a generator to compare: a label and its key=value settings (repeatable; default: "
                         + "; ".join(f"{k}: '{v}'" for k, v in VARIANTS.items()) + ")")
    ap.add_argument("--no-classic", action="store_true", help="skip the classic generator's reference row")
    ap.add_argument("overrides", nargs="*", help="GanConfig key=value (added to every variant)")
    args = ap.parse_args(argv)
    root = find_boxoban_dir()
    if root is None or not (root / "unfiltered" / "train").is_dir():
        raise SystemExit("Boxoban corpus not found: set CLM_BOXOBAN_DIR to the folder holding unfiltered/")
    variants = dict(args.variant) if args.variant else VARIANTS
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gan_levels_"))
    figures: dict = {"benchmark": "gan_levels", "seeds": args.seeds, "defaults": DEFAULTS + args.overrides,
                     "train": str(root / "unfiltered" / "train"), "variants": {}}
    for label, extra in variants.items():
        runs = []
        for seed in args.seeds:  # one after the other: wall times are comparable
            cfg = load_config(GanConfig, None, [f"data=levels:{root / 'unfiltered' / 'train'}", *DEFAULTS,
                                                *args.overrides, *shlex.split(extra), f"seed={seed}"])
            run = base / f"{label}-seed{seed}"
            try:
                s = train_gan(cfg, run, quiet=True)
            except UserError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            runs.append({k: s.get(k) for k in KEYS})
            print(f"{label} seed {seed}: " + "  ".join(f"{k}={s[k]:.4g}" for k in KEYS
                                                       if isinstance(s.get(k), float)), file=sys.stderr, flush=True)
        med = {k: float(np.median([r[k] for r in runs])) for k in KEYS if all(isinstance(r[k], float) for r in runs)}
        figures["variants"][label] = {"overrides": extra, "median": med, "runs": runs}
    if not args.no_classic:
        ref = classic_reference(root, 2000, 0, 100, 1.0)
        figures["classic_generator"] = ref
        print("classic generator: " + "  ".join(f"{k}={v:.4g}" for k, v in ref.items()), file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
