"""``clm generate DESIGN_RUN --load "x,y,fx,fy" -n N --out FILE.png``: designs for a user's load case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.design_clm.config import DesignConfig
from clm.domains.design.env import DesignVecEnv, at_volume, condition_planes
from clm.domains.design.loadcase import SUPPORTS, LoadCase, parse_load
from clm.domains.design.pictures import grid_figure, png_bytes
from clm.domains.design.simp import binarize, simp
from clm.domains.design.topology import describe
from clm.engine.runs import load_domain_run


def generate(args) -> int:
    """G's proposals for the user's load case, each edited by the run's editor (``--search editor``, the
    default) or left as G made them (``--search random``), judged against SIMP's design of the same case."""
    search = args.search or "editor"
    if search not in ("editor", "random"):
        raise UsageError(f"--search {search} is not for design runs; a design run takes editor or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; a design run has none")
    loads_text = getattr(args, "load", None) or []
    if not loads_text:
        raise UsageError('a design run needs the load case: --load "x,y,fx,fy" (node x from the left, y from the '
                         'bottom; repeat --load for a second load)')
    support = getattr(args, "support", None) or "cantilever"
    if support not in SUPPORTS:
        raise UsageError(f"--support {support}: use one of {', '.join(SUPPORTS)}")
    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: a design run writes a PNG grid; give a file ending in .png")
    domain, editor = load_domain_run(args.run_dir, DesignConfig)
    cfg = domain.cfg
    loads = tuple(parse_load(t, domain.nelx, domain.nely, f"--load {k + 1}") for k, t in enumerate(loads_text))
    lc = LoadCase(domain.nelx, domain.nely, support, loads, cfg.volfrac).validate("--load/--support")
    simp_design = binarize(simp(lc, max_iter=cfg.simp_max_iter).density, cfg.volfrac)
    simp_compliance = domain.env.solver.compliance(simp_design, lc)
    env = DesignVecEnv(args.n, [lc], [simp_compliance], [describe(simp_design, lc).key],
                       lambda cases, rng: domain.g_densities_for(np.stack([condition_planes(c) for c in cases]), rng),
                       cfg.episode_steps, cfg.block, args.seed, cfg.novelty_weight, cfg.connect_penalty, cfg.within)
    obs, _ = env.reset(seed=args.seed)
    steps = cfg.episode_steps if search == "editor" else 0
    for _ in range(steps):
        obs, *_ = env.step(editor.greedy_actions(obs))
    designs = [e["design"] for e in env.pop_finished()] if steps else list(obs[:, 0])  # plane 0: the design
    records, panels = [], []
    for k, d in enumerate(designs):
        j = env.judge(at_volume(d, cfg.volfrac), 0)
        t = j["topology"]
        records.append({"index": k, "compliance": j["compliance"], "compliance_simp": float(env.references[0]),
                        "ratio": j["ratio"], "connected": t.connected, "holes": t.holes, "members": t.members,
                        "creative": j["creative"], "search": search})
        panels.append({"design": d, "lc": lc, "title": f"#{k} {j['ratio']:.3g}x SIMP, h{t.holes} "
                                                        f"m{t.members}"})
    panels.append({"design": simp_design, "lc": lc, "title": "SIMP (1.00)"})
    rows = [panels[i:i + 4] for i in range(0, len(panels), 4)]
    atomic_write_bytes(out, png_bytes(grid_figure(rows)))
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    good = sum(r["connected"] and r["ratio"] <= 1 + cfg.within for r in records)
    print(f"wrote {len(records)} designs to {out} ({good} connected and within {cfg.within:.0%} of SIMP's compliance; "
          f"metrics in {out}.jsonl) with {search}")
    return 0
