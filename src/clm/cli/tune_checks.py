"""``clm tune``'s checks before it creates anything: the objective against the
command's figures, the env, the Optuna storage URL and a Ray cluster's address."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from clm.agents.envs import make_vec_env
from clm.core.errors import UsageError, UserError
from clm.engine import registry

#: the figures ``clm dqn train`` writes to summary.json (``clm tune dqn --objective`` takes one of them)
DQN_FIGURES = ("eval_return_mean", "eval_return_std", "best_eval_return", "env_steps", "gradient_steps", "episodes",
               "wall_seconds", "train_wall_seconds", "env_steps_per_second", "target_reached_env_steps",
               "target_reached_seconds")


def check_objective(objective: str, t) -> None:
    """``--objective`` must be a figure the tuned command writes (else the study would learn it after a trial).
    ``clm gan train``'s figures depend on its data's metrics: its objective is checked after the first trial."""
    if t.command == "gan":
        return
    known = DQN_FIGURES if t.command == "dqn" else registry.get(t.domain).figures
    if objective not in known:
        raise UsageError(f"--objective {objective}: clm {t.command} writes no such figure; use one of "
                         f"{', '.join(known)}")


def check_env(env_id: str) -> None:
    """The Gymnasium env exists and can be made (one copy, closed at once)."""
    make_vec_env(env_id, 1).close()


def check_storage(url: str, default: bool) -> None:
    """An Optuna storage URL that can be opened: a known database with its
    driver installed; a SQLite file in an existing folder that is a database
    (or not there yet). The default one is made in --out."""
    from sqlalchemy.engine import make_url  # Optuna's database layer: with the optional [tune] extra
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise UsageError(f"--storage {url}: not a database URL ({e}); give e.g. sqlite:///study.db") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        raise UsageError(f"--storage {url}: the {parsed.get_backend_name()} driver is not installed ({e}); "
                         f"install it, or use sqlite:///PATH") from None
    if parsed.get_backend_name() != "sqlite" or default:
        return
    if not parsed.database or parsed.database == ":memory:":
        raise UsageError(f"--storage {url}: give a file (sqlite:///PATH); an in-memory study cannot resume")
    path = Path(parsed.database)
    if not path.parent.is_dir():
        raise UsageError(f"--storage {url}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"--storage {url}: {path} is a folder; give a file")
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(16)
        except OSError as e:
            raise UsageError(f"--storage {url}: cannot read {path} ({e.strerror})") from None
        if head and head != b"SQLite format 3\x00":
            raise UsageError(f"--storage {url}: {path} is not a SQLite database; give a new file or a study's")


def check_ray_address(address: str, timeout: float) -> None:
    """The Ray cluster at ``address`` answers (its port accepts a connection) within ``timeout`` seconds."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address}: give HOST:PORT (or ray://HOST:PORT, or auto)")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, deadline - time.monotonic())).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"--ray-address {address}: no Ray cluster answered within {timeout:g} s "
                                f"({e.strerror or e}); start it (ray start --head) or fix the address, or raise "
                                f"--ray-timeout", exit_code=2) from None
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
