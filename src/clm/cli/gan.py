"""``clm gan train | sample | eval``: the GAN family on digits, MNIST or levels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from clm.cli.common import (
    add_training_arguments,
    config_and_run_dir,
    removed_on_failure,
)
from clm.core import distributed
from clm.core.config import load_config
from clm.core.errors import UsageError
from clm.core.rundir import _json_safe, atomic_write_text, dumps_line, require_run_dir
from clm.core.runtime import resolve_device, set_threads
from clm.gan.train import (
    GanConfig,
    check_data_parallel,
    evaluate_generator,
    load_generator,
    train,
)
from clm.gan_adapters.domains import gan_domain

#: GanConfig keys that may change when a run is resumed (budgets, intervals, threads, device)
GAN_RESUMABLE = ("steps", "log_every", "image_every", "checkpoint_every", "final_eval", "threads", "device",
                 "fid_weights")

SUMMARY_KEYS = ("fd_clf", "fd_clf_floor", "fd_clf_ratio", "precision", "recall", "density", "coverage",
                "novelty_mean", "memorised_fraction", "class_fraction_min", "class_fraction_max",
                "tile_kl", "tile_kl_floor", "valid_fraction", "raw_valid_fraction", "duplicate_fraction",
                "solvable_fraction", "fid_inception", "kid_inception", "fid_error", "wall_seconds")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gan", help="train, sample and evaluate GANs (digits, MNIST, Sokoban levels)")
    sub = p.add_subparsers(dest="gan_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", help="train a GAN; writes a run directory",
                       description="Train G and D. Hyperparameters: --config FILE and key=value overrides "
                                   "(see clm.gan.train.GanConfig, e.g. steps=2000 loss=hinge spectral_norm=true).")
    t.add_argument("--data", help="digits | mnist:PATH_TO_IMAGES_IDX | levels:PATH (Boxoban file or folder)")
    add_training_arguments(t, "GanConfig", "gan")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run",
                       description="Images: .png grid or .npy array (N, C, H, W) in [-1, 1]. "
                                   "Levels: .txt (Boxoban, decoded valid levels) or .png.")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", required=True, help="output file: .png, .npy (images) or .txt (levels)")
    s.add_argument("--seed", type=int, default=0, help="noise seed")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="recompute the metrics of a trained run (writes eval.json)")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--fid-weights", help="local torch-fidelity InceptionV3 weights: adds FID/KID")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON line")
    e.set_defaults(func=cmd_eval)


def _print_summary(summary: dict[str, Any], run_dir: Path, as_json: bool) -> None:
    if as_json:
        print(dumps_line({"run_dir": str(run_dir), **summary}))
        return
    print(f"run directory: {run_dir}")
    for k in SUMMARY_KEYS:
        if k in summary:
            v = summary[k]
            print(f"  {k:22s} {v:.4g}" if isinstance(v, float) else f"  {k:22s} {v}")


def cmd_train(args: argparse.Namespace) -> int:
    """Under torchrun every process runs this: all read the config and check
    it (the same errors on every rank), rank 0 alone makes the run folder,
    then all join the process group and train; rank 0 alone prints."""
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data={json.dumps(args.data)}")  # quoted: a path is never read as YAML (010 -> 8)
    launch = distributed.launch_env()
    main = launch is None or launch.rank == 0

    def check(cfg: GanConfig) -> None:  # before any folder is made
        check_data_parallel(cfg, launch.world_size if launch else 1)
        distributed.device_for(cfg.device)

    cfg, run_dir = config_and_run_dir(args, GanConfig, "gan", overrides, "last", resumable=GAN_RESUMABLE,
                                      check=check, create=main)
    if args.resume and main:
        (run_dir / "summary.json").unlink(missing_ok=True)  # a longer run replaces the old summary at its end
    with distributed.process_group(cfg.device):
        if not main:
            train(cfg, run_dir, gan_domain(cfg.data), resume=bool(args.resume), quiet=True)
            return 0
        with removed_on_failure(run_dir, bool(args.resume)):
            summary = train(cfg, run_dir, gan_domain(cfg.data), resume=bool(args.resume), quiet=args.json)
    _print_summary(summary, run_dir, args.json)
    return 0


def _load_run(run_dir_arg: str):
    run_dir = require_run_dir(run_dir_arg, "gan")
    cfg = load_config(GanConfig, run_dir / "config.yaml")
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    domain = gan_domain(cfg.data)
    data = domain.load(cfg)
    if data.categorical and cfg.rejection > 1:  # best-of-k sampling needs D too
        G, D = load_generator(run_dir, cfg, data, device, with_discriminator=True)
    else:
        G, D = load_generator(run_dir, cfg, data, device), None
    return run_dir, cfg, domain, data, G, D, device


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    out = Path(args.out)
    run_dir, cfg, domain, data, G, D, device = _load_run(args.run_dir)
    if out.suffix.lower() not in domain.sample_suffixes:
        raise UsageError(f"--out {out}: for {data.kind} use a file ending in {' or '.join(domain.sample_suffixes)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    domain.write_samples(G, D, data, cfg, args.n, out, args.seed, device)
    print(f"wrote {args.n} samples to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:

    run_dir, cfg, domain, data, G, D, device = _load_run(args.run_dir)
    if args.fid_weights:
        cfg.fid_weights = args.fid_weights
    metrics = evaluate_generator(G, data, cfg, run_dir, device, domain, D=D)
    atomic_write_text(run_dir / "eval.json", json.dumps(_json_safe(metrics), indent=2) + "\n")
    _print_summary(metrics, run_dir, args.json)
    return 0
