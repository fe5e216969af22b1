"""What every training command shares: its arguments and how --config,
key=value overrides, --out and --resume become a config and a run directory."""

from __future__ import annotations

import argparse
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from clm.core.checkpoint import checkpoint_exists, read_meta
from clm.core.config import load_config, read_yaml, to_dict
from clm.core.errors import UsageError
from clm.core.rundir import new_run_dir, require_run_dir


def add_training_arguments(parser: argparse.ArgumentParser, config_name: str, command: str) -> None:
    parser.add_argument("--config", help=f"YAML file of {config_name} keys")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--out", help=f"run directory to create (default runs/{command}-<time>); it must not exist "
                                      f"or be empty")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_and_run_dir(args: argparse.Namespace, cls: type, command: str, overrides: list[str],
                       checkpoint: str, base: dict[str, Any] | None = None,
                       resumable: tuple[str, ...] = (), check: Callable[[Any], None] | None = None,
                       create: bool = True) -> tuple[Any, Path | None]:
    """A new run: defaults < ``base`` < --config < overrides, in a new folder.
    --resume: the run's own config.yaml < overrides, and its folder, which must
    hold ``checkpoints/<checkpoint>``. Before anything is written, the
    resumed config is checked against the one the checkpoint was made with:
    only the keys in ``resumable`` (budgets, intervals, threads) may change,
    and ``check(cfg)`` may refuse the config (e.g. for the torchrun world size).
    ``create=False`` (a data-parallel rank other than 0, which writes nothing):
    a new run's folder is not made, and its path is None."""
    if not args.resume:
        cfg = load_config(cls, args.config, overrides, base=base)
        if check is not None:
            check(cfg)
        return cfg, (new_run_dir(command, args.out) if create else None)
    if args.out:
        raise UsageError("--resume continues a run in its own folder; drop --out")
    if args.config:
        raise UsageError("--resume continues a run with its own config.yaml; drop --config")
    run_dir = require_run_dir(args.resume, command)
    folder = run_dir / "checkpoints" / checkpoint
    if not checkpoint_exists(folder):
        return _restart(args, cls, run_dir, overrides, check, create)
    cfg = load_config(cls, base=read_yaml(run_dir / "config.yaml"), base_file=run_dir / "config.yaml", overrides=overrides)
    _, meta = read_meta(folder)
    saved = meta.get("config")
    if isinstance(saved, dict):
        old, new = _flat(saved), _flat(to_dict(cfg))
        # keys the checkpoint does not know (added to clm since) keep their defaults and are not compared
        changed = sorted(k for k in old if old[k] != new.get(k)
                         and k not in resumable and k.split(".")[-1] not in resumable)
        if changed:
            what = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in changed[:6])
            raise UsageError(f"--resume {run_dir}: {what} cannot change on resume (the checkpoint was made with the "
                             f"old values); keys that may change: {', '.join(resumable) or 'none'}. Start a new run "
                             f"with --out to try other settings")
    if check is not None:
        check(cfg)
    return cfg, run_dir


def _restart(args: argparse.Namespace, cls: type, run_dir: Path, overrides: list[str],
             check: Callable[[Any], None] | None, create: bool) -> tuple[Any, Path]:
    """``--resume`` of a run folder that holds no checkpoint (the run was killed
    before its first save): nothing in it can be continued, so the run starts
    again from the beginning in the same folder, with its config.yaml (and the
    overrides), and says so. What the killed session left (metrics, TensorBoard
    files, a half-written checkpoint) is removed first; config.yaml is kept.
    ``args.resume`` is cleared: the caller then runs it as a new run."""
    cfg = load_config(cls, base=read_yaml(run_dir / "config.yaml"), base_file=run_dir / "config.yaml", overrides=overrides)
    if check is not None:
        check(cfg)
    if create:  # rank 0 (or a plain run) alone touches the folder
        for p in run_dir.iterdir():
            if p.name != "config.yaml":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        (run_dir / "checkpoints").mkdir()
        print(f"note: {run_dir} holds no checkpoint (the run stopped before its first save): starting it again "
              f"from the beginning, with its config.yaml", file=sys.stderr)
    args.resume = None
    return cfg, run_dir


@contextmanager
def removed_on_failure(run_dir: Path, resumed: bool) -> Iterator[None]:
    """A new run folder that fails before its first checkpoint is removed
    (nothing in it can be resumed); a resumed run's folder is kept."""
    try:
        yield
    except BaseException:
        ckpts = run_dir / "checkpoints"
        if not resumed and not any(checkpoint_exists(p) for p in ckpts.glob("*")):
            shutil.rmtree(run_dir, ignore_errors=True)
            if run_dir.parent.name == "runs":  # the default root, when this run made it and it is empty now
                try:
                    run_dir.parent.rmdir()
                except OSError:
                    pass
        raise
