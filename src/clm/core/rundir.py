"""The run directory contract: config.yaml, metrics.jsonl, summary.json,
checkpoints/, tb/ (see ../shared/DESIGN.md), and atomic file writes."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clm.core.errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so that a
    reader (or a crash) never sees a half-written file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name", exit_code=2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror} ({e.filename}); choose another path", exit_code=2)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def check_output_folder(path: Path, marker: str, option: str = "--out") -> Path:
    """Refuse an output folder that :func:`folder_written_whole` must not
    replace: a file, or a non-empty folder without ``marker`` (the file that
    the same command writes into every folder it makes). A mistyped ``--out``
    then never deletes a folder of other things."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} exists and is not a folder; give a folder", exit_code=2)
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise UserError(f"{option} {path} is a folder that holds other things (no {marker}); give a new or empty "
                        f"folder, or one this command wrote", exit_code=2)
    return path


@contextmanager
def folder_written_whole(path: Path, marker: str, option: str = "--out") -> Iterator[Path]:
    """Yield a fresh hidden sibling of ``path`` to write into. When the block
    ends normally it replaces ``path`` by renames (the old folder, checked by
    :func:`check_output_folder`, is moved aside first and then deleted); when
    it raises, the sibling is removed and ``path`` is left as it was. A reader
    never sees half a folder."""
    path = check_output_folder(path, marker, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror} ({e.filename}); choose another {option}", exit_code=2)
    try:
        yield tmp
        if not (tmp / marker).is_file():
            raise RuntimeError(f"{tmp} was written without its {marker}")
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        return _json_safe(v.item())
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def dumps_line(obj: dict[str, Any]) -> str:
    """One compact JSON line (non-finite floats become null)."""
    return json.dumps(_json_safe(obj), separators=(",", ":"))


def new_run_dir(command: str, out: str | Path | None = None, root: str | Path = "runs") -> Path:
    """Create the run directory: ``out`` if given, else runs/<command>-<time>."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{command}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path(root) / f"{command}-{stamp}-{n}"
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} exists and is not a directory", exit_code=2)
        if path.is_dir() and any(path.iterdir()):
            hint = (f"; continue it with --resume {path}" if (path / "config.yaml").is_file() else "")
            raise UserError(f"--out {path} is not empty: choose a new folder{hint}", exit_code=2)
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run directory {path}: {e.strerror}; choose another --out", exit_code=2)
    return path


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "summary.json", json.dumps(_json_safe(summary), indent=2) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no summary.json: is it a finished run directory?")
    return json.loads(path.read_text())


#: the command that writes each kind of run directory, and the checkpoint folder it holds
RUN_KINDS = {"dqn": ("clm dqn train", "latest"), "gan": ("clm gan train", "last"), "run": ("clm run", "clm")}


def checkpoint_exists(folder: Path) -> bool:
    """Whether ``folder`` (or its ``.old`` copy, left by a crash between renames) holds a checkpoint."""
    folder = Path(folder)
    return (folder / "meta.json").is_file() or (folder.with_name(folder.name + ".old") / "meta.json").is_file()


def require_run_dir(path: str | Path, kind: str) -> Path:
    """Check that ``path`` is a run directory of ``kind`` (it has config.yaml,
    and no other command's checkpoint)."""
    path = Path(path)
    command = RUN_KINDS.get(kind, (f"clm {kind}", ""))[0]
    if not path.is_dir():
        raise UserError(f"run directory {path} does not exist", exit_code=2)
    if not (path / "config.yaml").is_file():
        raise UserError(f"{path} is not a clm run directory (no config.yaml); pass the folder a '{command}' run wrote",
                        exit_code=2)
    for other, (other_command, folder) in RUN_KINDS.items():
        if other != kind and checkpoint_exists(path / "checkpoints" / folder):
            raise UserError(f"{path} was written by '{other_command}', not '{command}': pass a folder that "
                            f"'{command}' wrote", exit_code=2)
    return path
