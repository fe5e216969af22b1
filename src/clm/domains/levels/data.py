"""Where the Boxoban corpus lives (it is never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

from clm.core.errors import UserError

#: The splits of DeepMind's Boxoban levels, as folders under the corpus root.
BOXOBAN_SPLITS = ("unfiltered/train", "unfiltered/valid", "unfiltered/test", "medium/train", "medium/valid", "hard")

ENV_VAR = "CLM_BOXOBAN_DIR"


def _default_dir() -> Path:
    # src/clm/domains/levels/data.py -> repo root is parents[4]; the shared
    # data folder sits beside the repo.
    return Path(__file__).resolve().parents[4].parent / "shared" / "data" / "boxoban"


def find_boxoban_dir(explicit: str | Path | None = None) -> Path | None:
    """The Boxoban corpus root: ``explicit`` if given (it must exist), else
    the ``CLM_BOXOBAN_DIR`` environment variable, else
    ``<repo>/../shared/data/boxoban`` when it exists; None otherwise."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise UserError(f"{p}: Boxoban folder not found")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise UserError(f"{ENV_VAR}={env}: that folder does not exist")
        return p
    p = _default_dir()
    return p if p.is_dir() else None


def boxoban_split(name: str, root: str | Path | None = None) -> Path:
    """The folder of one Boxoban split, e.g. ``'unfiltered/train'`` or
    ``'hard'``. Raises :class:`UserError` for an unknown split or when the
    corpus (or that split) is not present."""
    name = name.strip("/")
    if name not in BOXOBAN_SPLITS:
        raise UserError(f"unknown Boxoban split {name!r}; choose one of: {', '.join(BOXOBAN_SPLITS)}")
    base = find_boxoban_dir(root)
    if base is None:
        raise UserError(
            f"Boxoban levels not found: set {ENV_VAR} to the folder holding unfiltered/, medium/ and hard/ "
            f"(from https://github.com/deepmind/boxoban-levels), or place it at {_default_dir()}"
        )
    folder = base / name
    if not folder.is_dir() or not any(folder.glob("*.txt")):
        raise UserError(f"{folder}: Boxoban split {name!r} is missing (no .txt files there)")
    return folder
