"""``clm levels generate|solve|stats|render``: Sokoban levels from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from clm.core.errors import UsageError
from clm.core.rundir import dumps_line
from clm.domains.levels import metrics
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.io import read_levels, write_levels
from clm.domains.levels.metrics import difficulty_stats
from clm.domains.levels.render import render_grid, save_png
from clm.domains.levels.solver import solve_levels, warmup


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("levels", help="generate, solve, measure and draw Sokoban levels (Boxoban format)")
    cmds = group.add_subparsers(dest="levels_command", metavar="SUBCOMMAND", required=True)

    gen = cmds.add_parser("generate", help="make solvable levels with the classic generator",
                          description="Random room, reverse play from the solved state, checked by the exact "
                                      "solver. Same seed, same levels.")
    gen.add_argument("-n", type=int, required=True, help="number of levels")
    gen.add_argument("--size", default="10", help="N for NxN, or HxW (default 10)")
    gen.add_argument("--boxes", type=int, default=4, help="boxes per level (default 4)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--min-pushes", type=int, default=6, help="least optimal pushes accepted (default 6)")
    gen.add_argument("--out", required=True, help="Boxoban text file to write")
    gen.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    gen.set_defaults(func=cmd_generate)

    solve = cmds.add_parser("solve", help="solve levels push-optimally and summarise",
                            description="Exact A* solver over pushes; 'unsolvable' is a proof, 'limit' means "
                                        "the time limit stopped it.")
    solve.add_argument("path", metavar="FILE_OR_DIR", help="a Boxoban file or a folder of .txt files")
    solve.add_argument("--time-limit", type=float, default=10.0, help="seconds per level (default 10)")
    solve.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    solve.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    solve.set_defaults(func=cmd_solve)

    stats = cmds.add_parser("stats", help="playability, novelty, diversity, duplicates, tile KL, difficulty")
    stats.add_argument("path", metavar="FILE", help="levels to measure (file or folder)")
    stats.add_argument("--reference", metavar="FILE_OR_DIR",
                       help="corpus for novelty, duplicates-in-reference and tile KL (e.g. Boxoban train)")
    stats.add_argument("--time-limit", type=float, default=10.0, help="solver seconds per level (default 10)")
    stats.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    stats.set_defaults(func=cmd_stats)

    render = cmds.add_parser("render", help="draw levels as a PNG grid")
    render.add_argument("path", metavar="FILE", help="levels to draw (file or folder)")
    render.add_argument("--out", required=True, help="PNG file to write")
    render.add_argument("--cols", type=int, default=8, help="levels per row (default 8)")
    render.add_argument("--cell", type=int, default=16, help="pixels per tile (default 16)")
    render.add_argument("--max", type=int, default=64, dest="max_levels",
                        help="draw at most this many levels (default 64)")
    render.set_defaults(func=cmd_render)


def _size(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            size = int(h), int(w)
        else:
            size = int(text), int(text)
    except ValueError:
        raise UsageError(f"--size {text!r}: give N (square) or HxW, e.g. 10 or 8x12") from None
    if min(size) < 3:
        raise UsageError(f"--size {text!r}: a level needs at least 3x3 cells (a wall ring around floor)")
    return size


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be > 0, got {value:g}")


def cmd_generate(args: argparse.Namespace) -> int:

    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    size = _size(args.size)
    t0 = time.perf_counter()
    levels = generate_levels(args.n, size=size, n_boxes=args.boxes, seed=args.seed, min_pushes=args.min_pushes)
    seconds = time.perf_counter() - t0
    out = write_levels(args.out, levels)
    summary = {"levels": len(levels), "height": size[0], "width": size[1], "boxes": args.boxes,
               "seed": args.seed, "seconds": round(seconds, 3), "out": str(out)}
    if args.json:
        print(dumps_line(summary))
    else:
        print(f"wrote {len(levels)} levels ({size[0]}x{size[1]}, {args.boxes} boxes, seed {args.seed}) "
              f"to {out} in {seconds:.2f}s")
    return 0


def _read(path: str):
    return read_levels(path)


def cmd_solve(args: argparse.Namespace) -> int:

    _positive("--time-limit", args.time_limit)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    levels = _read(args.path)
    warmup()  # compile first, so that per-level seconds are solving time
    results = solve_levels(levels, time_limit=args.time_limit, n_jobs=args.jobs)
    stats = difficulty_stats(results)
    summary = {
        "levels": stats["levels"], "solved": stats["solved"], "unsolvable": stats["unsolvable"],
        "limit": stats["limit"], "seconds_median": stats["seconds_median"], "seconds_max": stats["seconds_max"],
        "pushes_median": stats["pushes_median"], "pushes_max": stats["pushes_max"],
        "moves_median": stats["moves_median"], "time_limit": args.time_limit,
    }
    if args.json:
        print(dumps_line(summary))
        return 0
    print(f"{summary['levels']} levels: {summary['solved']} solved, {summary['unsolvable']} unsolvable "
          f"(proved), {summary['limit']} stopped by the {args.time_limit:g}s limit")
    print(f"seconds per level: median {summary['seconds_median'] * 1000:.2f} ms, "
          f"max {summary['seconds_max'] * 1000:.1f} ms")
    if summary["solved"]:
        print(f"optimal pushes: median {summary['pushes_median']:g}, max {summary['pushes_max']}; "
              f"moves: median {summary['moves_median']:g}")
    names = [lv.name for lv, r in zip(levels, results) if not r.solved]
    if names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        print(f"not solved: {shown}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    _positive("--time-limit", args.time_limit)
    levels = _read(args.path)
    warmup()
    results = solve_levels(levels, time_limit=args.time_limit)
    diff = metrics.difficulty_stats(results)
    out: dict = {
        "levels": len(levels),
        "playable_fraction": diff["solved"] / len(levels),
        "unsolvable": diff["unsolvable"],
        "limit": diff["limit"],
        "diversity": metrics.diversity(levels),
        "duplicate_fraction": metrics.duplicate_fraction(levels),
        "pushes_mean": diff["pushes_mean"],
        "pushes_median": diff["pushes_median"],
        "moves_median": diff["moves_median"],
        "expansions_median": diff["expansions_median"],
        "time_limit": args.time_limit,
    }
    if args.reference:
        ref = _read(args.reference)
        nov = metrics.novelty(levels, ref)
        out.update({
            "reference_levels": len(ref),
            "novelty_mean": float(np.mean(nov)),
            "novelty_min": int(nov.min()),
            "novelty_median": float(np.median(nov)),
            "in_reference_fraction": metrics.duplicate_fraction(levels, ref),
            "tile_kl": metrics.tile_pattern_kl(levels, ref),
        })
    if args.json:
        print(dumps_line(out))
        return 0
    width = max(len(k) for k in out)
    for k, v in out.items():
        shown = "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        print(f"{k:<{width}}  {shown}")
    return 0


MAX_CELL = 256  #: pixels per tile in a render
MAX_PIXELS = 100_000_000  #: largest picture a render draws (a bigger one takes minutes and GBs)


def cmd_render(args: argparse.Namespace) -> int:
    if args.cols < 1 or args.cell < 1 or args.max_levels < 1:
        raise UsageError("--cols, --cell and --max must be at least 1")
    if args.cell > MAX_CELL:
        raise UsageError(f"--cell {args.cell} is too large: at most {MAX_CELL} pixels per tile")
    out = Path(args.out)  # a folder is refused by save_png's atomic write
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
    levels = _read(args.path)
    shown = levels[: args.max_levels]
    if not shown:
        raise UsageError(f"{args.path} holds no levels to draw")
    cols = min(args.cols, len(shown))
    rows = -(-len(shown) // cols)
    h, w = (max(lv.shape[i] for lv in shown) for i in (0, 1))
    pixels = (cols * w * args.cell) * (rows * h * args.cell)
    if pixels > MAX_PIXELS:
        raise UsageError(f"the picture would be {pixels / 1e6:.0f} megapixels (at most {MAX_PIXELS // 10**6}); "
                         f"lower --cell or --max")
    image = render_grid(shown, cols=args.cols, cell=args.cell, labels=[lv.name for lv in shown])
    path = save_png(image, Path(args.out))
    print(f"drew {len(shown)} of {len(levels)} levels to {path} ({image.width}x{image.height} px)")
    return 0
