"""``clm explain RUN_DIR``: attributions of a CLM run's agent and D, as pictures."""

from __future__ import annotations

import argparse

from clm.core.rundir import dumps_line
from clm.tools.explain import explain_run, sanity_headline


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="why the agent and D decide as they do: attribution heat maps of a CLM run",
        description="Integrated Gradients and saliency (Captum) of the agent's chosen action (its Q-network) and of "
                    "D's realism, over the input grid, drawn as heat maps over the level (canvas, word): one PNG per "
                    "input and attributions.json (the figures, IG's convergence deltas, and Adebayo et al.'s "
                    "randomisation sanity check). Levels runs explain archive levels by default.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder that `clm run` wrote")
    p.add_argument("--levels", metavar="FILE", help="levels runs: explain the levels of this Boxoban-format file "
                                                    "(the first -n) instead of the run's archive")
    p.add_argument("--out", metavar="DIR", help="folder to write (default RUN_DIR/attributions, which the report "
                                                "shows); an existing one is replaced only if clm explain wrote it")
    p.add_argument("-n", type=int, default=4, help="inputs to explain (default 4)")
    p.add_argument("--no-sanity", action="store_true", help="skip the randomisation sanity check (faster)")
    p.add_argument("--json", action="store_true", help="print the record's headline figures as one JSON line")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    out, record = explain_run(args.run_dir, args.out, args.levels, args.n, sanity=not args.no_sanity)
    headline = {"out": str(out), "domain": record["domain"], "explained": len(record["items"]),
                **sanity_headline(record)}
    if args.json:
        print(dumps_line(headline))
        return 0
    print(f"wrote {len(record['items'])} attribution picture(s) of the {record['domain']} run to {out} "
          f"(from {record['source']})")
    if "sanity" in record:
        for who, s in record["sanity"].items():
            print(f"sanity check, {who}: Spearman of |IG| with the trained network's: {s['random_spearman_ig']:.2f} "
                  f"randomised, {s['control_spearman_ig']:.2f} recomputed (control)")
    return 0
