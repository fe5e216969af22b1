"""``clm design corpus``: the design domain's corpus of SIMP designs, made by the project."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clm.core.errors import UsageError
from clm.core.rundir import dumps_line


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("design", help="the design domain: a corpus of SIMP designs for random load cases")
    cmds = group.add_subparsers(dest="design_command", metavar="SUBCOMMAND", required=True)
    corpus = cmds.add_parser(
        "corpus", help="make (or read from the cache) SIMP designs for random load cases",
        description="SIMP (density filter rmin 1.5, penalty 3, OC updates) on random load cases of the family "
                    "(cantilever and half-MBB supports, one or two unit point loads on free edges), written as one "
                    "safetensors file with a JSON header (load cases, settings, seconds). Same settings, same file: "
                    "a second call reads it from the cache.")
    corpus.add_argument("--n-train", type=int, default=96, help="training load cases (default 96; ~0.5 s each at 32x16)")
    corpus.add_argument("--n-heldout", type=int, default=32, help="held-out load cases (default 32)")
    corpus.add_argument("--grid", default="32x16", help="NELXxNELY elements, 16x8 .. 64x32 (default 32x16)")
    corpus.add_argument("--volfrac", type=float, default=0.4, help="volume fraction in (0, 1) (default 0.4)")
    corpus.add_argument("--seed", type=int, default=0, help="seed of the load cases (default 0)")
    corpus.add_argument("--max-iter", type=int, default=100, help="SIMP iterations at most (default 100)")
    corpus.add_argument("--out", help="corpus file to write (default: the cache, $CLM_CACHE/design)")
    corpus.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    corpus.set_defaults(func=cmd_corpus)


def cmd_corpus(args: argparse.Namespace) -> int:
    import numpy as np

    from clm.domains.design.corpus import build_corpus, cached_corpus, default_cache_dir, parse_grid, write_corpus

    nelx, nely = parse_grid(args.grid)
    if args.n_train < 1 or args.n_heldout < 1:
        raise UsageError(f"--n-train and --n-heldout must be >= 1, got {args.n_train} and {args.n_heldout}")
    if not 0 < args.volfrac < 1:
        raise UsageError(f"--volfrac {args.volfrac:g} must lie in (0, 1)")
    if args.max_iter < 1:
        raise UsageError(f"--max-iter must be >= 1, got {args.max_iter}")

    def progress(k: int, n: int) -> None:
        if not args.json and (k % 16 == 0 or k == n):
            print(f"  SIMP {k}/{n}", file=sys.stderr)

    t0 = time.perf_counter()
    settings = (args.n_train, args.n_heldout, nelx, nely, args.volfrac, args.seed, args.max_iter)
    if args.out:
        path = Path(args.out)
        corpus, cached = build_corpus(*settings, progress=progress), False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_corpus(path, corpus)
    else:
        corpus, path, cached = cached_corpus(default_cache_dir(), *settings, progress=progress)
    summary = {"path": str(path), "cached": cached, "load_cases": len(corpus.load_cases),
               "train": int((~corpus.heldout).sum()), "heldout": int(corpus.heldout.sum()), "grid": f"{nelx}x{nely}",
               "simp_seconds": corpus.header["seconds"], "wall_seconds": round(time.perf_counter() - t0, 3),
               "median_simp_solves": float(np.median(corpus.solves)),
               "median_compliance": float(np.median(corpus.compliance))}
    if args.json:
        print(dumps_line(summary))
    else:
        how = "read from the cache" if cached else f"made in {summary['simp_seconds']:.1f} s"
        print(f"{summary['load_cases']} SIMP designs ({summary['train']} train, {summary['heldout']} held-out), "
              f"{how}: {path}")
    return 0
