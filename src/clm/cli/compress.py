"""``clm compress RUN_DIR``: a levels run's player and G pruned and/or quantised, and measured."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from clm.core.errors import UsageError
from clm.core.rundir import dumps_line
from clm.tools.compress import CompressionSpec, compress_run, markdown_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress", help="prune and/or int8-quantise a levels run's player and G, and measure them",
        description="Magnitude pruning (global L1 over Linear and Conv2d weights, made permanent) and dynamic int8 "
                    "quantisation (Linear layers) of the player's Q-network and G. Writes the compressed weights "
                    "(safetensors) and a table (compression.md, compression.json) of file size, CPU batch time "
                    "(one thread, median) and quality before and after: the player's held-out solve rate, G's "
                    "tile_kl and solvable fraction.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder that `clm run` wrote (levels domain)")
    p.add_argument("--prune", type=float, default=0.0, metavar="F",
                   help="fraction of the Linear/Conv2d weights set to zero, in [0, 1) (default 0)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation of the Linear layers")
    p.add_argument("--out", metavar="DIR", help="folder to write (default RUN_DIR/compressed-<spec>); an existing "
                                                "one is replaced only if clm compress wrote it")
    p.add_argument("--samples", type=int, default=256, help="G's levels decoded for tile_kl and solvable (default 256)")
    p.add_argument("--repeats", type=int, default=30, help="timed batches per network (default 30)")
    p.add_argument("--json", action="store_true", help="print the table's rows as one JSON line")
    p.set_defaults(func=cmd_compress)


def cmd_compress(args: argparse.Namespace) -> int:
    spec = CompressionSpec(args.prune, args.quantize or "")  # checks the fraction before anything is read
    if spec.prune == 0 and not spec.quantize:
        raise UsageError("nothing to do: give --prune F (0 < F < 1) and/or --quantize int8")
    if args.samples < 1 or args.repeats < 1:
        raise UsageError("--samples and --repeats must be >= 1")
    out, rows = compress_run(args.run_dir, spec, args.out, samples=args.samples, repeats=args.repeats)
    if args.json:
        print(dumps_line({"out": str(out), "spec": asdict(spec), "rows": [asdict(r) for r in rows]}))
        return 0
    print(markdown_table(rows), end="")
    print(f"compressed weights and the table: {out}")
    return 0
