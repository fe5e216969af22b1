"""The design CLM against SIMP on held-out load cases (issue 26's evidence).

For each seed: one ``clm run --domain design`` (the given settings, the same
corpus of SIMP designs for every seed: only the networks' seeds differ),
then on the corpus's held-out load cases:

1. **G alone** (one forward pass, one FE solve to check): the share of
   designs connected and within 10% of SIMP's compliance, and the median
   compliance ratio (design / SIMP's black-and-white design).
2. **Equal FE solves**: the best connected design's compliance ratio after
   k = 1, 5, 10, 20 solves (median over load cases; a case with no connected
   design yet counts as infinite, and a median that is infinite is printed
   as null; the share of cases with a connected design is printed too): the CLM (G's proposal, then the greedy editor's
   edits; a keep costs none) against SIMP from its uniform start (each
   iteration one solve; its design after k iterations made black and white
   at the volume and solved, a measurement not counted).
3. **Creativity**: per load case, distinct topologies (holes, members) among
   connected designs within 10% of SIMP's compliance found in 100 solves:
   the CLM (G samples with fresh noise, each edited by the editor, until
   100 solves), SIMP from random starts (uniform random densities scaled to
   the volume fraction; each run's iterations count), random G samples
   (100 proposals, one solve each).

Prints one JSON line at the end (means and 95% intervals over seeds).

    python benchmarks/design_clm.py --seeds 5 --out runs/bench-design
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

from clm.design_clm.config import DesignConfig
from clm.domains.design.env import at_volume
from clm.domains.design.simp import binarize, simp
from clm.domains.design.topology import describe
from clm.engine.runs import load_domain_run

KS = (1, 5, 10, 20)


def best_curve(trace: list[tuple[int, float, bool]], ks=KS) -> dict[int, float]:
    """Best ratio of a connected design among those judged within k solves (inf: none yet)."""
    out = {}
    for k in ks:
        ok = [r for s, r, c in trace if s <= k and c]
        out[k] = min(ok) if ok else float("inf")
    return out


def clm_trace(domain, editor, case: int, edits: int, seed: int) -> list[tuple[int, float, bool, tuple]]:
    """(solves so far, ratio, connected, key) after G's proposal and each of the editor's edits."""
    env = domain.make_env(1, np.array([case]), seed)
    env.steps = edits + 1  # the episode does not end inside the trace
    obs, _ = env.reset(options={"cases": np.array([0])})
    st = env.status()
    trace = [(1, float(st["ratio"][0]), bool(st["connected"][0]), tuple(st["key"][0]))]
    for _ in range(edits):
        obs, *_ = env.step(editor.greedy_actions(obs))
        st = env.status()
        trace.append((int(st["solves"][0]), float(st["ratio"][0]), bool(st["connected"][0]), tuple(st["key"][0])))
    return trace


def simp_trace(domain, case: int, iters: int, x0=None) -> list[tuple[int, float, bool, tuple]]:
    """SIMP's black-and-white design after each of its first ``iters`` iterations (one solve each)."""
    lc, ref, solver = domain.cases[case], domain.corpus.compliance[case], domain.env.solver
    trace = []
    for k in range(1, iters + 1):
        r = simp(lc, solver, max_iter=k, x0=x0)
        d = binarize(r.density, lc.volfrac)
        c = solver.compliance(d, lc)
        t = describe(d, lc)
        trace.append((r.iterations, c / ref, t.connected, t.key))
        if r.iterations < k:  # converged before k
            break
    return trace


def creativity(domain, editor, case: int, budget: int, seed: int, within: float) -> dict[str, int]:
    lc, ref, solver = domain.cases[case], domain.corpus.compliance[case], domain.env.solver
    rng = np.random.default_rng(seed)
    found = {"clm": set(), "simp_random_starts": set(), "g_random": set()}
    used = 0
    while used < budget:  # the CLM: fresh G proposals, each edited
        trace = clm_trace(domain, editor, case, min(domain.cfg.episode_steps, budget - used - 1),
                          int(rng.integers(1 << 30)))
        used += trace[-1][0]
        found["clm"] |= {k for _, r, c, k in trace if c and r <= 1 + within}
    used = 0
    while used < budget:  # SIMP from random starts, each run's iterations counted
        x0 = rng.uniform(0, 1, (lc.nely, lc.nelx))
        x0 *= lc.volfrac / x0.mean()
        r = simp(lc, solver, max_iter=budget - used, x0=np.clip(x0, 0, 1))
        used += r.iterations
        d = binarize(r.density, lc.volfrac)
        t = describe(d, lc)
        if t.connected and solver.compliance(d, lc) / ref <= 1 + within:
            found["simp_random_starts"].add(t.key)
    dens = domain.g_densities(np.full(budget, case), rng)  # random G samples, one solve each
    for d in dens:
        b = at_volume(d, lc.volfrac)
        t = describe(b, lc)
        if t.connected and solver.compliance(b, lc) / ref <= 1 + within:
            found["g_random"].add(t.key)
    return {k: len(v) for k, v in found.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="runs/bench-design")
    ap.add_argument("--cases", type=int, default=32, help="held-out load cases for G alone and the k-solve curves")
    ap.add_argument("--creativity-cases", type=int, default=8, help="held-out load cases for the creativity count")
    ap.add_argument("--budget", type=int, default=100, help="FE solves per load case in the creativity count")
    ap.add_argument("run_args", nargs="*", help="clm run settings (key=value) for every seed's run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    per_seed = []
    simp_done: dict[int, list] = {}
    for seed in range(args.seeds):
        run = Path(args.out) / f"seed{seed}"
        summary = clm_run(run, ["--domain", "design", f"seed={seed}", *args.run_args])
        domain, editor = load_domain_run(run, DesignConfig)
        within = domain.cfg.within
        cases = domain.held_idx[: args.cases]
        g_ok, g_ratio, clm_k, simp_k = [], [], {k: [] for k in KS}, {k: [] for k in KS}
        for case in cases:
            trace = clm_trace(domain, editor, int(case), max(KS) - 1, seed)
            g_ratio.append(trace[0][1])
            g_ok.append(trace[0][2] and trace[0][1] <= 1 + within)
            for k, v in best_curve([t[:3] for t in trace]).items():
                clm_k[k].append(v)
            if int(case) not in simp_done:  # SIMP is deterministic: one curve per load case
                simp_done[int(case)] = simp_trace(domain, int(case), max(KS))
            for k, v in best_curve([t[:3] for t in simp_done[int(case)]]).items():
                simp_k[k].append(v)
        creative = [creativity(domain, editor, int(c), args.budget, seed, within)
                    for c in cases[: args.creativity_cases]]
        row = {"seed": seed, "run_wall_seconds": summary["wall_seconds"],
               "g_within10_fraction": float(np.mean(g_ok)), "g_median_ratio": float(np.median(g_ratio)),
               **{f"clm_median_ratio_k{k}": float(np.median(clm_k[k])) for k in KS},
               **{f"simp_median_ratio_k{k}": float(np.median(simp_k[k])) for k in KS},
               **{f"clm_within5_k{k}": float(np.mean(np.array(clm_k[k]) <= 1.05)) for k in KS},
               **{f"simp_within5_k{k}": float(np.mean(np.array(simp_k[k]) <= 1.05)) for k in KS},
               **{f"clm_connected_k{k}": float(np.mean(np.isfinite(clm_k[k]))) for k in KS},
               **{f"simp_connected_k{k}": float(np.mean(np.isfinite(simp_k[k]))) for k in KS},
               **{f"distinct_{m}": float(np.mean([c[m] for c in creative])) for m in creative[0]}}
        row = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}  # inf: none
        per_seed.append(row)
        print(json.dumps(row), file=sys.stderr)
    keys = [k for k in per_seed[0] if k != "seed"]
    result = {"seeds": args.seeds, "cases": args.cases, "creativity_cases": args.creativity_cases,
              "budget": args.budget, "run_args": args.run_args, "wall_seconds": time.perf_counter() - t0,
              "simp_solves_median_full": float(np.median(domain.corpus.solves[domain.held_idx[: args.cases]])),
              **{k: dict(zip(("mean", "low", "high"), ci95([r[k] for r in per_seed]))) for k in keys}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
