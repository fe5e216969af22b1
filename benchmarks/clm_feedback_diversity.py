"""Does feeding the archive back narrow G? Random-sample diversity of G after
a CLM run with archive feedback (default: the archive's best-scored creative
levels feed D's real batches), with ``feedback_levels=qd_elites`` (the QD
grid's elites, one per cell), and without feedback (the plain GAN), paired by
seed, on the runs of ``benchmarks/clm_qd.py`` (same scale; finished runs are
reused, so run that benchmark first or let this one train them).

    .venv/bin/python benchmarks/clm_feedback_diversity.py --seeds 5 --runs runs/qd

Prints one line per seed and a final JSON line: distinct layouts per 1,000
samples and mean pairwise Hamming distance, mean and 95% interval per G, and
the paired differences from the plain GAN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchstats import ci95
from clm_qd import PLAIN, qd_run, sample_diversity

VARIANTS = {"fed-back (archive)": ("clm", []), "fed-back (QD elites)": ("clm-qd-elites", ["feedback_levels=qd_elites"]),
            "plain": ("plain", PLAIN)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--runs", default="runs/qd")
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    import torch

    from clm.levels_clm.search import load_run

    torch.set_num_threads(1)
    runs = Path(args.runs)
    per: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    for seed in range(args.seeds):
        line = []
        for name, (prefix, extra) in VARIANTS.items():
            qd_run(runs / f"{prefix}-{seed}", seed, extra)
            run = load_run(runs / f"{prefix}-{seed}")
            d = sample_diversity(run.G, run.judge.n_boxes, args.samples, seed + 7)
            per[name].append(d)
            line.append(f"{name} {d['distinct_per_1000']:.0f} distinct, Hamming {d['mean_hamming']:.2f}")
        print(f"seed {seed}: " + " | ".join(line), flush=True)
    out: dict = {"seeds": args.seeds, "samples": args.samples}
    for name, ds in per.items():
        out[name] = {k: ci95([d[k] for d in ds]) for k in ("distinct_per_1000", "mean_hamming")}
        out[name]["per_seed"] = ds
        if name != "plain":
            out[f"{name} - plain"] = {k: ci95([a[k] - b[k] for a, b in zip(ds, per["plain"])])
                                      for k in ("distinct_per_1000", "mean_hamming")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
