"""Entry point of the ``clm`` console script."""

from __future__ import annotations

import argparse
import sys

from clm import __version__
from clm.cli import compress, design, dqn, explain, gan, levels, report, run, serve, tune
from clm.core.distributed import launch_env
from clm.core.errors import UserError

# Each module adds its sub-commands; keep one line per command group.
GROUPS: list = [run, dqn, levels, gan, report, tune, explain, compress, design, serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clm", description="Creative Learning Model: DQN agents and GANs that learn together.")
    parser.add_argument("--version", action="version", version=f"clm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"{_rank_prefix()}error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # the file system refused (disk full, permissions): say which file, no traceback
        print(f"error: {e.strerror or e} ({e.filename or 'a file'}); check the path and free space", file=sys.stderr)
        return 1


def _rank_prefix() -> str:
    """'' for a plain process and torchrun's rank 0; '[rank N] ' for the
    other ranks of a torchrun launch, whose messages would read as rank 0's."""
    try:
        env = launch_env()
    except UserError:
        return ""
    return f"[rank {env.rank}] " if env is not None and env.rank else ""


if __name__ == "__main__":
    sys.exit(main())
