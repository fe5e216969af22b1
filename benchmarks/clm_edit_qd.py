"""Issue 25, evidence (a) and (c): do agents that edit G's levels illuminate the
QD grid beyond what searches of G's latent space reach?

Per seed, one CLM run (12 rounds as benchmarks/clm_qd.py, the player cut to
a minimum since it never touches G; reused when present) gives G, D and the
corpus. Every search then spends exactly
--budget judge evaluations (an evaluation = one level judged, edits
included; a layout judged twice counts twice) on that run's G and D,
filing every judged level in the same QD grid (optimal pushes x wall
density; clm.levels_clm.qd_grid.QDGrid):

  random        z ~ N(0, I) (clm.levels_clm.qd)
  cma_me        CMA-ME on z, pyribs (clm.levels_clm.qd, today's best)
  random_edits  MAP-Elites over levels, ACCEL's random edits as the mutation
                (clm.levels_clm.edit_qd.RandomEditEmitter; 64 G samples first)
  edit_agent    the same MAP-Elites with the learned edit agent as the
                mutation, asked for empty cells near each elite
                (clm.levels_clm.edit_qd.AgentEditEmitter)

The edit agent is trained per seed on the run's final G and D for
--train-episodes episodes (clm.levels_clm.edit_qd.train_edit_agent; its
evaluations are counted and reported). The payoff: random_edits is also run
with --payoff-x times the budget; the evaluations it needs to reach the
agent's QD-score at --budget give the saving per search, and the training
evaluations / saving the number of searches after which the agent has paid
for itself.

Evidence (c) (--difficulty LO:HI): levels of LO..HI optimal pushes,
playable and novel (>= the run's min_novelty cells), distinct, per 1,000
evaluations and their tile-pattern KL to the corpus, for each search's
judged levels, and for the classic generator asked for the same difficulty
(one room per evaluation, 1 and 2 boxes).

    nice -n 15 .venv/bin/python benchmarks/clm_edit_qd.py --seeds 5 --out runs/edit-qd

Writes edit_qd.json in --out and prints a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchstats import ci95, clm_run

# G and D are what the searches use; the player never touches G (player_steers_generator is off by default),
# so the player is cut to a minimum: 64 env steps a round, no demonstrations (a 7x7 run takes about a minute).
SCALE7 = ["rounds=12", "player_steps=64", "player_demos=false", "generated_to_player=false", "eval_every=12",
          "eval_levels=10", "report=false", "stuck_rounds=0"]
SCALE10 = ["data=boxoban:{boxoban}", "corpus_size=800", "heldout_size=50", "rounds=12", "player_steps=64",
           "player_demos=false", "designer_search=false", "generated_to_player=false", "eval_every=12",
           "eval_levels=10", "report=false", "stuck_rounds=0"]
METHODS = ("random", "cma_me", "random_edits", "edit_agent")


def grid_for(size: int, min_novelty: int):
    from clm.levels_clm.qd_grid import QDGrid

    if size == 7:
        return QDGrid("wall_density", min_novelty=min_novelty)  # the grid of docs/results.md: 12 x 20 cells
    # 10x10: pushes 1..40 in bins of 2 (Boxoban's levels need more pushes), wall density as at 7x7
    return QDGrid("wall_density", bins=(20, 20), ranges=((0.5, 40.5), (0.0, 0.8)), min_novelty=min_novelty)


def judged_levels(judge) -> tuple[np.ndarray, dict]:
    """Tiles and figures of every distinct layout a CachedJudge judged."""
    from clm.levels_clm.couplings import Judgement
    from dataclasses import fields

    names = [f.name for f in fields(Judgement)]
    keys = list(judge.cache)
    if not keys:
        return np.zeros((0, 0, 0), np.int8), {n: np.zeros(0) for n in names}
    h, w = int.from_bytes(keys[0][:2], "little"), int.from_bytes(keys[0][2:4], "little")
    tiles = np.stack([np.frombuffer(k[4:], np.int8).reshape(h, w) for k in keys])
    figs = {n: np.asarray([judge.cache[k][i] for k in keys]) for i, n in enumerate(names)}
    return tiles, figs


def difficulty_yield(judge, corpus_tiles, lo: int, hi: int, min_novelty: int, evaluations: int) -> dict:
    """Distinct playable, novel levels of lo..hi pushes among a search's judged levels."""
    from clm.domains.levels.metrics import tile_pattern_kl

    tiles, f = judged_levels(judge)
    ok = f["playable"].astype(bool) & (f["pushes"] >= lo) & (f["pushes"] <= hi) & (f["novelty"] >= min_novelty)
    kl = tile_pattern_kl(tiles[ok], corpus_tiles) if ok.any() else None
    return {"per_1000": 1000 * int(ok.sum()) / evaluations, "tile_kl": kl}


def max_eligible_pushes(judge, min_novelty: int):
    """Most optimal pushes among the playable, novel levels a search judged (None: none)."""
    _, f = judged_levels(judge)
    ok = f["playable"].astype(bool) & (f["novelty"] >= min_novelty)
    return float(f["pushes"][ok].max()) if ok.any() else None


def classic_yield(size: int, n_boxes: int, lo: int, hi: int, tries: int, seed: int, corpus_tiles) -> dict:
    """The classic generator asked for lo..hi pushes: one room per evaluation (its one solver check)."""
    from clm.core.errors import UserError
    from clm.domains.levels import levels_to_tiles
    from clm.domains.levels.generator import generate_level
    from clm.domains.levels.metrics import tile_pattern_kl
    from clm.domains.levels.solver import solve_level

    rng = np.random.default_rng(seed)
    found = []
    for _ in range(tries):
        try:
            lv = generate_level(rng, size, n_boxes, min_pushes=lo, max_tries=1)
        except UserError:
            continue
        if solve_level(lv, 10.0).pushes <= hi:
            found.append(lv)
    kl = tile_pattern_kl(levels_to_tiles(found), corpus_tiles) if found else None
    return {"per_1000": 1000 * len({lv.key() for lv in found}) / tries, "tile_kl": kl}


def curve_evals_to(curve, target: float):
    """Evaluations after which a search's QD-score first reaches ``target`` (None: never)."""
    return next((e for e, _, q in curve if q >= target), None)


def judge_seed(run_dir: Path, seed: int, args) -> dict:
    import torch

    from clm.domains.levels import levels_to_tiles
    from clm.levels_clm.edit_qd import CachedJudge, search_edit_agent, search_random_edits, train_edit_agent
    from clm.levels_clm.qd import LatentQDProblem, run_qd_search
    from clm.levels_clm.search import load_run

    torch.set_num_threads(1)
    run = load_run(run_dir)
    run.judge.archive_tiles = None  # novelty against the corpus only
    if args.solve_time_limit:
        run.judge.solve_time_limit = args.solve_time_limit
    G, D, k = run.G, run.D, run.judge.min_novelty
    corpus_tiles = levels_to_tiles(run.corpus)
    lo, hi = args.lohi

    def grid():
        return grid_for(args.size, k)

    out: dict = {}

    def record(name, search, budget=args.budget):
        J = CachedJudge(run.judge)
        t = time.perf_counter()
        if search in ("random", "cma_me"):
            p = run_qd_search(search, G, D, J, budget, seed, grid=grid())
        else:
            p = LatentQDProblem(G, D, J, grid(), budget)
            search(p)
        out[name] = {"qd_score": p.grid.qd_score, "coverage": p.grid.coverage, "filled": p.grid.filled,
                     "evaluations": p.evaluations, "solver_calls": J.misses, "seconds": time.perf_counter() - t,
                     "difficulty": difficulty_yield(J, corpus_tiles, lo, hi, k, p.evaluations),
                     "max_pushes": max_eligible_pushes(J, k)}
        return p

    box_kw = dict(max_boxes=args.max_boxes, max_edits=args.max_edits)
    if "random" in args.methods:
        record("random", "random")
    if "cma_me" in args.methods:
        record("cma_me", "cma_me")
    if "random_edits" in args.methods:
        record("random_edits", lambda p: search_random_edits(p, seed, **box_kw))
    if "edit_agent" in args.methods:
        t = time.perf_counter()
        train_judge = CachedJudge(run.judge)
        agent, train_evals = train_edit_agent(G, D, train_judge, grid, args.train_episodes, seed + 1000, **box_kw)
        train_seconds = time.perf_counter() - t
        record("edit_agent", lambda p: search_edit_agent(p, seed, agent=agent, epsilon=args.epsilon,
                                                         temperature=args.temperature, **box_kw))
        out["edit_agent"].update(training_evaluations=train_evals, training_seconds=train_seconds,
                                 training_solver_calls=train_judge.misses)
        if args.payoff_x > 1 and "random_edits" in args.methods:
            long = record("random_edits_long", lambda p: search_random_edits(p, seed, **box_kw),
                          budget=args.budget * args.payoff_x)
            need = curve_evals_to(long.curve, out["edit_agent"]["qd_score"])
            saving = None if need is None else need - args.budget
            out["edit_agent"]["payoff"] = {
                "random_edits_evals_to_match": need, "saving_per_search": saving,
                "searches_to_pay_off": (train_evals / saving) if saving and saving > 0 else None}
            del out["random_edits_long"]["difficulty"]
    if args.classic:
        out["classic"] = {f"{b}_box": classic_yield(args.size, b, lo, hi, args.classic, seed, corpus_tiles)
                          for b in (1, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--size", type=int, choices=(7, 10), default=7, help="7: generated 7x7 one-box corpus; 10: Boxoban")
    ap.add_argument("--boxoban", default="../shared/data/boxoban", help="Boxoban folder (--size 10)")
    ap.add_argument("--out", default="runs/edit-qd")
    ap.add_argument("--budget", type=int, default=1000, help="judge evaluations per search and seed")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--train-episodes", type=int, default=2000, help="edit agent's training episodes per seed")
    ap.add_argument("--epsilon", type=float, default=0.2,
                    help="the edit agent's exploration while searching (0.2: chosen on a development run, not these seeds)")
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="> 0: the edit agent draws its edits from the softmax of its Q-values (instead of epsilon)")
    ap.add_argument("--max-edits", type=int, default=4)
    ap.add_argument("--max-boxes", type=int, default=4)
    ap.add_argument("--payoff-x", type=int, default=4, help="random_edits also with this many budgets (payoff)")
    ap.add_argument("--difficulty", default="8:12", help="LO:HI pushes for evidence (c)")
    ap.add_argument("--classic", type=int, default=0, help="classic generator rooms per box count for (c) (0: skip)")
    ap.add_argument("--solve-time-limit", type=float, default=0.0, help="solver seconds per level (0: the run's)")
    args = ap.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {', '.join(unknown)}: valid ones are {', '.join(METHODS)}")
    try:
        args.lohi = tuple(int(v) for v in args.difficulty.split(":"))
        assert len(args.lohi) == 2 and 1 <= args.lohi[0] <= args.lohi[1]
    except (ValueError, AssertionError):
        raise SystemExit(f"error: --difficulty must be LO:HI with 1 <= LO <= HI, got '{args.difficulty}'")

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    per_seed = []
    t0 = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run_dir = root / f"clm{args.size}-{seed}"
        scale = SCALE7 if args.size == 7 else [s.format(boxoban=args.boxoban) for s in SCALE10]
        clm_run(run_dir, [f"seed={seed}", *scale])
        figures = judge_seed(run_dir, seed, args)
        per_seed.append({"seed": seed, "methods": figures})
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): " + ", ".join(
            f"{m} {f['qd_score']:.1f}" for m, f in figures.items() if "qd_score" in f), flush=True)

    methods = [m for m in per_seed[0]["methods"] if "qd_score" in per_seed[0]["methods"][m]]
    rows = {m: {k: ci95([s["methods"][m][k] for s in per_seed]) for k in ("qd_score", "coverage", "filled")}
            for m in methods}

    def ratio(a, b):
        if a not in methods or b not in methods:
            return None
        return ci95([s["methods"][a]["qd_score"] / s["methods"][b]["qd_score"] for s in per_seed])

    ratios = {f"{a}/{b}": ratio(a, b) for a in ("edit_agent", "random_edits") for b in ("cma_me", "random_edits", "random")
              if a != b}
    diff = {m: {k: ci95([s["methods"][m]["difficulty"][k] for s in per_seed]) for k in ("per_1000", "tile_kl")}
            for m in methods if "difficulty" in per_seed[0]["methods"][m]}
    if args.classic:
        for b in ("1_box", "2_box"):
            diff[f"classic {b}"] = {k: ci95([s["methods"]["classic"][b][k] for s in per_seed])
                                    for k in ("per_1000", "tile_kl")}
    payoff = None
    if "edit_agent" in methods:
        ea = [s["methods"]["edit_agent"] for s in per_seed]
        payoff = {"training_evaluations": ci95([e["training_evaluations"] for e in ea]),
                  "per_seed": [e.get("payoff") for e in ea]}
    targets = {}
    if ratios.get("edit_agent/cma_me"):
        targets["edit_agent >= 2x cma_me"] = ratios["edit_agent/cma_me"][0] >= 2.0
    if ratios.get("edit_agent/random_edits"):
        targets["edit_agent >= 1.2x random_edits"] = ratios["edit_agent/random_edits"][0] >= 1.2
    result = {"size": args.size, "budget": args.budget, "seeds": args.seeds,
              "qd_score": {m: r["qd_score"] for m, r in rows.items()},
              "coverage": {m: r["coverage"] for m, r in rows.items()}, "ratios": ratios,
              "difficulty": {"range": args.difficulty, **diff}, "payoff": payoff, "targets": targets,
              "wall_seconds": time.perf_counter() - t0}
    (root / f"edit_qd_{args.size}.json").write_text(json.dumps({**result, "rows": rows, "per_seed": per_seed},
                                                               indent=1, default=float))
    print(f"\nQD grid pushes x wall density, {args.size}x{args.size}, {args.budget} evaluations per search, "
          f"{args.seeds} seeds")
    for m, r in rows.items():
        q, c = r["qd_score"], r["coverage"]
        print(f"{m:18s} QD {q[0]:7.1f} ({q[1]:.1f}..{q[2]:.1f})  coverage {c[0]:.3f}")
    for k, v in ratios.items():
        if v:
            print(f"ratio {k}: {v[0]:.2f} ({v[1]:.2f}..{v[2]:.2f})")
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
