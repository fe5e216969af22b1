"""Benchmark: what pruning and int8 quantisation cost and buy on a trained
levels run's player and G (issue 17). Target: an int8 player at >= 1.5x CPU
inference speed within 2 points of its held-out solve rate, or the measured
reason why not.

The sweep: pruning 0 / 0.3 / 0.5 / 0.7 (global L1 over Linear and Conv2d
weights), each with and without dynamic int8 quantisation of the Linear
layers; each compressed network timed against the fp32 one in alternation
(one torch thread, a batch of ``--batch`` inputs, median of ``--repeats``
of the thread's CPU time; wall times are recorded beside),
with ``prune 0, fp32`` as the control (the fp32 network against its own
copy: the timing's noise). Quality: the player's held-out solve rate (the
run's own evaluation), G's tile_kl and solvable fraction of ``--samples``
decoded levels.

Where the int8 player is slower than 1.5x, the player's batch time is split
into its conv trunk (fp32 in both: dynamic quantisation has no conv
kernels) and its Linear head, fp32 and int8, timed the same way: the
ceiling Amdahl's law puts on the whole network's speed-up.

    .venv/bin/python benchmarks/compress.py RUN_DIR [--prune 0 0.3 0.5 0.7] [--repeats 50] [--batch 256]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from clm.tools.compress import (CompressionSpec, compare, load_for_compression, markdown_table,
                                 paired_batch_seconds, quantize_int8)


def player_parts(player: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Batch times (ms) of the player's conv trunk and of its Linear head, fp32 and int8."""
    with torch.inference_mode():
        h = player.features(x)
    head = torch.nn.Sequential(player.body, player.head).eval()
    head8 = quantize_int8(head)
    s = paired_batch_seconds({"trunk": lambda: player.features(x), "head_fp32": lambda: head(h),
                              "head_int8": lambda: head8(h), "whole_fp32": lambda: player(x)}, repeats)
    return {k: 1e3 * v["cpu"] for k, v in s.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--prune", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--samples", type=int, default=256)
    args = ap.parse_args()
    t0 = time.perf_counter()
    m = load_for_compression(args.run_dir, args.batch, args.samples)
    fp32_quality: dict = {}
    rows = []
    for fraction in args.prune:
        for quant in ("", "int8"):
            spec = CompressionSpec(fraction, quant)
            spec_rows, _ = compare(m, spec, args.repeats, fp32_quality)
            print(markdown_table(spec_rows), flush=True)
            rows += [{**asdict(r), "spec": spec.label} for r in spec_rows]
    after = {(r["network"], r["spec"]): r for r in rows if r["variant"] != "fp32"}
    base_solve = fp32_quality["player"]["heldout_solve_rate"]
    int8 = after[("player", "prune0-int8")]
    drop_points = 100 * (base_solve - int8["heldout_solve_rate"])
    met = int8["speedup"] >= 1.5 and drop_points <= 2.0
    parts = player_parts(m.player, m.player_inputs, args.repeats)
    # Amdahl: with the trunk unchanged, the whole network can gain at most (trunk + head) / (trunk + int8 head)
    ceiling = (parts["trunk"] + parts["head_fp32"]) / (parts["trunk"] + parts["head_int8"])
    print(f"player parts (ms per batch of {args.batch}): conv trunk {parts['trunk']:.3f}, Linear head fp32 "
          f"{parts['head_fp32']:.3f} / int8 {parts['head_int8']:.3f}; whole fp32 {parts['whole_fp32']:.3f}; "
          f"int8 speed-up ceiling with the trunk in fp32: {ceiling:.2f}x")
    result = {
        "benchmark": "compress", "run_dir": str(Path(args.run_dir).resolve()), "batch": args.batch,
        "repeats": args.repeats, "samples": args.samples, "threads": 1, "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.backends.quantized.engine}".strip(),
        "target": {"int8_player_speedup": int8["speedup"], "fp32_solve_rate": base_solve,
                   "int8_solve_rate": int8["heldout_solve_rate"], "solve_rate_drop_points": drop_points,
                   "met": bool(met)},
        "player_parts_ms": parts, "int8_speedup_ceiling": ceiling,
        "rows": rows, "wall_seconds": time.perf_counter() - t0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
