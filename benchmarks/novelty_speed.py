"""Level novelty speed: 10,000 levels against 100,000 reference levels.

    .venv/bin/python benchmarks/novelty_speed.py [--baseline-n 1000] [--repeats 5] [--cache /tmp/nov.npz]

References (100,000 distinct 10x10 levels): the 10,000 Boxoban unfiltered/train
levels under the 8 symmetries of the square (rotations and mirror images,
which keep a level a valid 10x10 Sokoban level), distinct ones kept, topped
up with levels from our generator (``generate_levels(.., size=10, n_boxes=4,
seed=s)``) that are not already there. Queries (10,000): 5,000 Boxoban levels
from other splits (unfiltered/valid, unfiltered/test, medium/valid, hard,
medium/train 000) and 5,000 generated levels (another seed).

Times ``clm.domains.levels.metrics.novelty`` (compiled bit-sliced kernel) on
all 10,000 queries, and the previous implementation (chunked torch matmul of
one-hot grids, copied below as ``baseline_novelty_torch``) on the first
``--baseline-n`` queries, where both are also timed and their results
compared. Medians of ``--repeats`` runs after a warm-up call; the last line
is JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from clm.core.rundir import dumps_line
from clm.domains.levels import find_boxoban_dir, levels_to_tiles, read_levels
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.level import N_TILES
from clm.domains.levels.metrics import novelty


# --- the previous implementation, verbatim but for names (baseline) ----------

def _baseline_onehot_features(flat: np.ndarray, keep: np.ndarray) -> torch.Tensor:
    cells, tiles = keep // N_TILES, keep % N_TILES
    return torch.from_numpy((flat[:, cells] == tiles[None, :]).astype(np.float32))


def baseline_novelty_torch(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """The chunked torch version of ``novelty`` that the kernel replaced
    (tile arrays only; Hamming = cells - one-hot dot products)."""
    cells = a.shape[1] * a.shape[2]
    n = a.shape[0]
    fa, fb = a.reshape(n, -1), b.reshape(b.shape[0], -1)
    in_a = np.stack([(fa == t).any(axis=0) for t in range(N_TILES)], axis=1)
    in_b = np.stack([(fb == t).any(axis=0) for t in range(N_TILES)], axis=1)
    all_a = np.stack([(fa == t).all(axis=0) for t in range(N_TILES)], axis=1)
    all_b = np.stack([(fb == t).all(axis=0) for t in range(N_TILES)], axis=1)
    constant_match = (all_a & all_b).any(axis=1)
    keep = np.flatnonzero(((in_a & in_b) & ~constant_match[:, None]).reshape(-1))
    n_const = int(constant_match.sum())
    qa = _baseline_onehot_features(fa, keep)
    best = torch.zeros(n)
    for start in range(0, b.shape[0], chunk):
        qb = _baseline_onehot_features(fb[start:start + chunk], keep)
        matches = qa @ qb.T
        best = torch.maximum(best, matches.max(dim=1).values)
    return (cells - n_const - best.round().to(torch.int64)).numpy()


# --- data ---------------------------------------------------------------------

QUERY_SPLITS = ("unfiltered/valid", "unfiltered/test", "medium/valid", "hard", "medium/train/000.txt")


def symmetries(t: np.ndarray) -> np.ndarray:
    """(8N, H, H) the 8 rotations / mirror images of square grids."""
    out = []
    for k in range(4):
        r = np.rot90(t, k, axes=(1, 2))
        out += [r, r[:, :, ::-1]]
    return np.ascontiguousarray(np.concatenate(out))


def distinct(t: np.ndarray) -> np.ndarray:
    """Rows of t, duplicates dropped (first kept, order kept)."""
    keys = [x.tobytes() for x in t]
    seen, keep = set(), []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return t[keep]


def build(n_ref: int, n_query: int) -> tuple[np.ndarray, np.ndarray, dict]:
    root = find_boxoban_dir()
    if root is None:
        raise SystemExit("Boxoban corpus not found (set CLM_BOXOBAN_DIR)")
    t0 = time.perf_counter()
    train = levels_to_tiles(read_levels(root / "unfiltered/train"))
    ref = distinct(symmetries(train))
    n_sym = len(ref)
    seen = {x.tobytes() for x in ref}
    extra, seed = [], 1
    while n_sym + len(extra) < n_ref:
        for x in levels_to_tiles(generate_levels(min(5000, n_ref - n_sym - len(extra)), size=10, n_boxes=4,
                                                 seed=seed)):
            if x.tobytes() not in seen and n_sym + len(extra) < n_ref:
                seen.add(x.tobytes())
                extra.append(x)
        seed += 1
    ref = np.concatenate([ref, np.stack(extra)]) if extra else ref[:n_ref]
    boxoban_q = np.concatenate([levels_to_tiles(read_levels(root / s)) for s in QUERY_SPLITS])
    n_box = min(len(boxoban_q), n_query // 2)
    gen_q = levels_to_tiles(generate_levels(n_query - n_box, size=10, n_boxes=4, seed=10_000))
    query = np.concatenate([boxoban_q[:n_box], gen_q])
    info = {"ref_boxoban_train_symmetries": n_sym, "ref_generated": len(extra), "query_boxoban": n_box,
            "query_generated": len(gen_q), "build_s": round(time.perf_counter() - t0, 1)}
    return query, ref, info


def timed(fn, repeats: int) -> tuple[float, list[float], np.ndarray]:
    secs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t0)
    return float(np.median(secs)), secs, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-ref", type=int, default=100_000)
    ap.add_argument("--n-query", type=int, default=10_000)
    ap.add_argument("--baseline-n", type=int, default=1000, help="queries timed with the torch baseline")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    ap.add_argument("--cache", help="npz file to keep the built level sets in (built once, then reused)")
    args = ap.parse_args()

    if args.cache and Path(args.cache).is_file():
        z = np.load(args.cache, allow_pickle=False)
        query, ref, info = z["query"], z["ref"], {"cached": args.cache}
    else:
        query, ref, info = build(args.n_ref, args.n_query)
        if args.cache:
            np.savez(args.cache, query=query, ref=ref)
    assert len({x.tobytes() for x in ref}) == len(ref), "references are not distinct"
    print(f"queries {query.shape}, references {ref.shape} (distinct); {info}", flush=True)

    t0 = time.perf_counter()
    novelty(query[:8], ref[:8])  # compile, or load the cached kernel
    warm_s = time.perf_counter() - t0

    new_s, new_all, result = timed(lambda: novelty(query, ref), args.repeats)
    print(f"new kernel, {len(query)} x {len(ref)}: median {new_s:.3f} s  {[round(s, 3) for s in new_all]}",
          flush=True)

    sub = query[: args.baseline_n]
    sub_s, sub_all, sub_res = timed(lambda: novelty(sub, ref), args.repeats)
    base_s, base_all, base_res = timed(lambda: baseline_novelty_torch(sub, ref), args.baseline_repeats)
    same = bool((base_res == sub_res).all() and (result[: len(sub)] == sub_res).all())
    print(f"subset {len(sub)} x {len(ref)}: baseline torch median {base_s:.3f} s {[round(s, 2) for s in base_all]}, "
          f"new median {sub_s:.3f} s; identical: {same}", flush=True)

    scale = len(query) / len(sub)
    figures = {
        "n_query": len(query), "n_ref": len(ref), "cells": int(query.shape[1] * query.shape[2]),
        "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
        "warmup_s": round(warm_s, 3), "new_median_s": round(new_s, 3),
        "new_min_s": round(min(new_all), 3), "new_max_s": round(max(new_all), 3),
        "ns_per_pair": round(new_s / (len(query) * len(ref)) * 1e9, 3),
        "subset_n": len(sub), "baseline_subset_median_s": round(base_s, 3), "new_subset_median_s": round(sub_s, 3),
        "baseline_full_estimate_s": round(base_s * scale, 1),
        "speedup_subset": round(base_s / sub_s, 1), "speedup_vs_full_estimate": round(base_s * scale / new_s, 1),
        "identical": same,
        "novelty_median": float(np.median(result)), "novelty_min": int(result.min()),
        "novelty_max": int(result.max()), "novelty_zero_fraction": float((result == 0).mean()),
    }
    figures.update(info)
    print(dumps_line(figures))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
