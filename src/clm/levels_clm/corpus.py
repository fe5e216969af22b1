"""The CLM's real levels and the player's pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clm.core.errors import UserError
from clm.domains.levels import Level, levels_to_tiles, read_levels
from clm.domains.levels.generator import generate_levels


def _one_size(levels: list[Level], where: Path) -> None:
    sizes = sorted({lv.shape for lv in levels})
    if len(sizes) > 1:
        first = next(lv for lv in levels if lv.shape != levels[0].shape)
        raise UserError(f"{where}: the CLM needs levels of one size, found {', '.join(f'{h}x{w}' for h, w in sizes)} "
                        f"(level {levels[0].name!r} is {levels[0].shape[0]}x{levels[0].shape[1]}, level {first.name!r} "
                        f"is {first.shape[0]}x{first.shape[1]})")


def load_corpus(cfg) -> tuple[list[Level], list[Level]]:
    """(training corpus, held-out real levels) for ``cfg.data``.

    ``generated``: the project's own generator (no download), a fixed seed per
    corpus so that every run of a config sees the same levels.
    ``boxoban:DIR``: Boxoban unfiltered train (first ``corpus_size``) and test.
    A file or folder: a fixed-seed split of its levels.
    """
    if cfg.data == "generated":
        levels = generate_levels(cfg.corpus_size + cfg.heldout_size, size=cfg.level_size, n_boxes=cfg.n_boxes,
                                 seed=10_000 + cfg.level_size * 10 + cfg.n_boxes, min_pushes=cfg.min_pushes)
        return levels[: cfg.corpus_size], levels[cfg.corpus_size:]
    if cfg.data.startswith("boxoban:"):
        root = Path(cfg.data.split(":", 1)[1]).expanduser()
        train_dir, test_dir = root / "unfiltered" / "train", root / "unfiltered" / "test"
        if not train_dir.is_dir() or not test_dir.is_dir():
            raise UserError(f"--data boxoban:{root}: expected a Boxoban folder with unfiltered/train and "
                            f"unfiltered/test inside (e.g. ../shared/data/boxoban)", exit_code=2)
        train, test = list(read_levels(train_dir))[: cfg.corpus_size], list(read_levels(test_dir))[: cfg.heldout_size]
        _one_size(train, train_dir)
        _one_size(test, test_dir)
        if train and test and train[0].shape != test[0].shape:
            raise UserError(f"--data boxoban:{root}: the training levels are {train[0].shape[0]}x{train[0].shape[1]} but "
                            f"the test levels are {test[0].shape[0]}x{test[0].shape[1]}; both splits must be one size")
        return train, test
    path = Path(cfg.data).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist: use generated, boxoban:DIR or a Boxoban file/folder",
                        exit_code=2)
    levels = list(read_levels(path))
    _one_size(levels, path)
    perm = np.random.default_rng(cfg.seed).permutation(len(levels))
    n_held = max(1, min(cfg.heldout_size, len(levels) // 5))
    return [levels[i] for i in perm[n_held:]][: cfg.corpus_size], [levels[i] for i in perm[:n_held]]


def player_pool(real: list[Level], generated: list[Level], fraction: float) -> np.ndarray:
    """Tiles of the player's pool: all real levels, plus generated ones
    repeated or subsampled so that they make ``fraction`` of the pool."""
    real_t = levels_to_tiles(real)
    if not generated or fraction <= 0:
        return real_t
    gen_t = levels_to_tiles(generated)
    want = int(round(len(real_t) * fraction / (1 - fraction)))
    idx = np.arange(want) % len(gen_t)
    return np.concatenate([real_t, gen_t[idx]])
