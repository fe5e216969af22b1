"""Where the Boxoban corpus lives (it is never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clm.core.errors import UserError
from clm.domains.levels.io import read_levels

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


def _reference_path(train_path: Path) -> Path | None:
    """Boxoban keeps splits side by side: .../unfiltered/train -> .../unfiltered/valid."""
    if train_path.is_dir() and train_path.name == "train":
        sib = train_path.parent / "valid"
        if sib.is_dir() and any(sib.glob("*.txt")):
            return sib
    return None


def training_split(path: str, reference: str = "", max_levels: int = 0, test_fraction: float = 0.1,
                   split_seed: int = 0) -> tuple[list, list, str]:
    """(training levels, held-out reference levels, where the reference came
    from) for a Boxoban file or folder: the reference is ``reference`` if
    given, else the sibling ``valid`` split of a Boxoban ``train`` folder,
    else a fixed-seed ``test_fraction`` of ``path``. ``max_levels`` > 0 keeps
    the first that many training levels. Every level must be one size."""
    train_path = Path(path).expanduser()
    levels = list(read_levels(train_path))
    if not levels:
        raise UserError(f"{train_path}: no levels to train on")
    shapes = {lv.shape for lv in levels}
    if len(shapes) != 1:
        counts = {sh: sum(lv.shape == sh for lv in levels) for sh in shapes}
        odd = min(counts, key=counts.get)
        example = next(lv for lv in levels if lv.shape == odd)
        sizes = ", ".join(f"{n} of {h}x{w}" for (h, w), n in sorted(counts.items()))
        raise UserError(f"{train_path}: levels of several sizes ({sizes}; e.g. level {example.name!r} is "
                        f"{odd[0]}x{odd[1]}); a GAN needs one size: keep one size in the file or folder")
    ref_path = Path(reference).expanduser() if reference else _reference_path(train_path)
    if ref_path is not None:
        test_levels, train_levels, source = list(read_levels(ref_path)), levels, str(ref_path)
    else:
        perm = np.random.default_rng(split_seed).permutation(len(levels))
        n_test = max(2, int(round(len(levels) * test_fraction)))
        test_levels = [levels[i] for i in sorted(perm[:n_test])]
        train_levels = [levels[i] for i in sorted(perm[n_test:])]
        source = f"{train_path} (fixed-seed {test_fraction:g} split, seed {split_seed})"
    if max_levels > 0:
        train_levels = train_levels[:max_levels]
    if {lv.shape for lv in test_levels} != shapes:
        raise UserError(f"reference levels {source} differ in size from the training levels {sorted(shapes)}")
    if len(train_levels) < 2 or len(test_levels) < 2:
        raise UserError(f"{train_path}: too few levels ({len(train_levels)} train, {len(test_levels)} reference)")
    return train_levels, test_levels, source


def room_size_labels(train_onehot, test_onehot):
    """Levels have no class, so the FD-clf feature classifier learns a
    structural label instead: the decile (over the training split) of the
    number of open (non-wall) cells, which makes its features sensitive to
    room shape and size. Returns (train labels, test labels, classes)."""
    open_train = (np.asarray(train_onehot)[:, 0] == 0).reshape(len(train_onehot), -1).sum(1)
    open_test = (np.asarray(test_onehot)[:, 0] == 0).reshape(len(test_onehot), -1).sum(1)
    edges = np.unique(np.quantile(open_train, np.linspace(0, 1, 11)[1:-1]))
    return (np.searchsorted(edges, open_train, side="right"), np.searchsorted(edges, open_test, side="right"),
            len(edges) + 1)
