"""What every training command shares: its arguments and how --config,
key=value overrides, --out and --resume become a config and a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clm.core.config import load_config, read_yaml
from clm.core.errors import UsageError
from clm.core.rundir import new_run_dir, require_run_dir


def add_training_arguments(parser: argparse.ArgumentParser, config_name: str, command: str) -> None:
    parser.add_argument("--config", help=f"YAML file of {config_name} keys")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--out", help=f"run directory to create (default runs/{command}-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def config_and_run_dir(args: argparse.Namespace, cls: type, command: str, overrides: list[str],
                       checkpoint: str, base: dict[str, Any] | None = None) -> tuple[Any, Path]:
    """A new run: defaults < ``base`` < --config < overrides, in a new folder.
    --resume: the run's own config.yaml < overrides, and its folder, which must
    hold ``checkpoints/<checkpoint>``."""
    if not args.resume:
        return load_config(cls, args.config, overrides, base=base), new_run_dir(command, args.out)
    if args.out:
        raise UsageError("--resume continues a run in its own folder; drop --out")
    if args.config:
        raise UsageError("--resume continues a run with its own config.yaml; drop --config")
    run_dir = require_run_dir(args.resume, command)
    folder = run_dir / "checkpoints" / checkpoint
    if not (folder / "meta.json").exists() and not folder.with_name(checkpoint + ".old").exists():
        raise UsageError(f"{run_dir} has no checkpoint to resume from (checkpoints/{checkpoint} is missing)")
    return load_config(cls, base=read_yaml(run_dir / "config.yaml"), overrides=overrides), run_dir
