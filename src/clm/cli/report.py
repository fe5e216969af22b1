"""``clm report RUN_DIR [--out FILE]``: (re)write a run's offline HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.core.errors import UserError
from clm.report import RUN_FILES, write_report


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="write the offline HTML report of a CLM run directory",
        description="Reads config.yaml, summary.json, metrics.jsonl, levels/ and evidence.json of a run "
                    "directory and writes one self-contained HTML file (images embedded, opens offline). "
                    "Missing pieces show as 'not recorded'.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory that `clm run` wrote")
    parser.add_argument("--out", metavar="FILE", help="HTML file to write (default RUN_DIR/report.html)")
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such directory", exit_code=2)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a directory; give the run directory that `clm run` wrote", exit_code=2)
    if not any((run_dir / name).exists() for name in RUN_FILES):
        raise UserError(f"{run_dir}: not a run directory (none of {', '.join(RUN_FILES)} found)", exit_code=2)
    path = write_report(run_dir, out=args.out)
    print(path)
    return 0
