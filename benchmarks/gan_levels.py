"""Benchmark: the tile-grid GAN on Boxoban levels (unfiltered train), with
the reference = Boxoban unfiltered valid.

Reports, for the generator's decoded samples: tile-pattern KL (2x2) against
the training corpus and its floor (valid vs train), validity of decoded and
of raw (argmax, unrepaired) samples, duplicates of training levels, Hamming
novelty, FD-clf and coverage on the level classifier's features, and the
solvable fraction of decoded and raw samples (exact solver, time limit per
level stated in the output).

Usage:  python benchmarks/gan_levels.py [--seeds 0] [--out DIR] [key=value ...]
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from clm.core.config import load_config
from clm.core.errors import UserError
from clm.domains.levels import find_boxoban_dir
from clm.gan.train import GanConfig, train

KEYS = ("tile_kl", "tile_kl_floor", "tile_kl_ratio", "tile_kl_raw", "valid_fraction", "raw_valid_fraction",
        "duplicate_fraction", "self_duplicate_fraction", "novelty_mean", "memorised_fraction", "diversity",
        "diversity_floor", "fd_clf", "fd_clf_ratio", "coverage", "precision", "solvable_fraction",
        "raw_solvable_fraction", "mean_boxes", "wall_seconds")

DEFAULTS = ["steps=3000", "eval_samples=2000", "classifier_epochs=5",
            "solve_samples=100", "solve_time_limit=1.0"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", help="GanConfig key=value (added to this benchmark's defaults)")
    args = ap.parse_args(argv)
    root = find_boxoban_dir()
    if root is None or not (root / "unfiltered" / "train").is_dir():
        raise SystemExit("Boxoban corpus not found: set CLM_BOXOBAN_DIR to the folder holding unfiltered/")
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gan_levels_"))
    runs = []
    for seed in args.seeds:
        cfg = load_config(GanConfig, None, [f"data=levels:{root / 'unfiltered' / 'train'}", *DEFAULTS,
                                            *args.overrides, f"seed={seed}"])
        run = base / f"levels-seed{seed}"
        try:
            s = train(cfg, run, quiet=True)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        runs.append({k: s.get(k) for k in KEYS})
        print(f"seed {seed}: " + "  ".join(f"{k}={s[k]:.4g}" for k in KEYS if isinstance(s.get(k), float)),
              file=sys.stderr)
    med = {k: float(np.median([r[k] for r in runs])) for k in KEYS if all(isinstance(r[k], float) for r in runs)}
    print(json.dumps({"benchmark": "gan_levels", "seeds": args.seeds, "config": DEFAULTS + args.overrides,
                      "train": str(root / "unfiltered" / "train"), "median": med, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
