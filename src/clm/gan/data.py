"""What a GAN trains on: one object for images and for tile-grid levels.

``load_gan_data(spec, ...)`` turns ``digits``, ``mnist:PATH`` or
``levels:PATH`` into a :class:`GanData`: train/test tensors (N, C, H, W),
integer labels for the FD-clf feature classifier, and condition vectors for
conditional G and D.

Labels: digits use their class. Levels have no class, so the FD-clf
classifier learns a structural label instead: the decile (over the training
split) of the number of open (non-wall) cells, which makes its features
sensitive to room shape and size. Conditions: the digit class one-hot; for
levels the box count one-hot (1..``max_boxes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.core.errors import UserError


@dataclass
class GanData:
    """Train/test data of one data set, as the GAN and the metrics see it."""

    kind: str  # "images" or "levels"
    key: str  # names the data set and split, e.g. "digits-split0-test0.25" (classifier cache key)
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    train_cond: torch.Tensor
    test_cond: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)  # levels: train_levels, test_levels, test_source

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def cond_dim(self) -> int:
        return int(self.train_cond.shape[1])


def _one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), n).float()


def _check_tensor(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise UserError(f"data '{name}' must have shape (N, C, H, W), got {tuple(x.shape)}")
    if len(x) < 2:
        raise UserError(f"data '{name}' is empty or holds a single example ({len(x)}); a GAN needs a data set")
    if not torch.isfinite(x).all():
        raise UserError(f"data '{name}' holds NaN or infinite values")


def from_arrays(train_x: np.ndarray | torch.Tensor, train_y: np.ndarray | torch.Tensor,
                test_x: np.ndarray | torch.Tensor, test_y: np.ndarray | torch.Tensor, name: str = "arrays") -> GanData:
    """A GanData from in-memory images (N, C, H, W) in [-1, 1] and int labels
    (for library users with their own data); checks shape, emptiness, NaN."""
    tx, vx = torch.as_tensor(train_x).float(), torch.as_tensor(test_x).float()
    _check_tensor(tx, f"{name} (train)")
    _check_tensor(vx, f"{name} (test)")
    if tx.shape[1:] != vx.shape[1:]:
        raise UserError(f"data '{name}': train items have shape {tuple(tx.shape[1:])}, test items {tuple(vx.shape[1:])}")
    ty, vy = torch.as_tensor(train_y).long(), torch.as_tensor(test_y).long()
    if len(ty) != len(tx) or len(vy) != len(vx):
        raise UserError(f"data '{name}': labels and images differ in number")
    n_classes = int(max(ty.max(), vy.max())) + 1
    return GanData("images", name, tx, vx, ty, vy, n_classes, _one_hot(ty, n_classes), _one_hot(vy, n_classes))


def load_images(spec: str, test_fraction: float, split_seed: int) -> GanData:
    from clm.domains.images import load_image_data

    s = load_image_data(spec, test_fraction, split_seed)
    key = f"{s.name}-split{split_seed}-test{test_fraction:g}"
    d = from_arrays(s.train_x, s.train_y, s.test_x, s.test_y, name=s.name)
    d.key, d.n_classes = key, s.n_classes
    d.train_cond, d.test_cond = _one_hot(s.train_y, s.n_classes), _one_hot(s.test_y, s.n_classes)
    return d


def _reference_path(train_path: Path) -> Path | None:
    """Boxoban keeps splits side by side: .../unfiltered/train -> .../unfiltered/valid."""
    if train_path.is_dir() and train_path.name == "train":
        sib = train_path.parent / "valid"
        if sib.is_dir() and any(sib.glob("*.txt")):
            return sib
    return None


def load_levels_data(path: str, reference: str = "", max_levels: int = 0, test_fraction: float = 0.1,
                     split_seed: int = 0, max_boxes: int = 6) -> GanData:
    """Levels from a Boxoban file or folder. The held-out reference is
    ``reference`` if given, else the sibling ``valid`` split of a Boxoban
    ``train`` folder, else a fixed-seed ``test_fraction`` of ``path``.
    ``max_levels`` > 0 keeps the first that many training levels."""
    from clm.domains.levels import levels_to_onehot, read_levels

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
        test_levels = list(read_levels(ref_path))
        train_levels = levels
        source = str(ref_path)
    else:
        rng = np.random.default_rng(split_seed)
        perm = rng.permutation(len(levels))
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
    tx = torch.from_numpy(levels_to_onehot(train_levels))
    vx = torch.from_numpy(levels_to_onehot(test_levels))
    open_train = (tx[:, 0] == 0).flatten(1).sum(1).numpy()
    open_test = (vx[:, 0] == 0).flatten(1).sum(1).numpy()
    edges = np.unique(np.quantile(open_train, np.linspace(0, 1, 11)[1:-1]))
    ty = torch.from_numpy(np.searchsorted(edges, open_train, side="right")).long()
    vy = torch.from_numpy(np.searchsorted(edges, open_test, side="right")).long()
    n_classes = len(edges) + 1

    def cond(lvls: list) -> torch.Tensor:
        nb = torch.tensor([min(max(lv.n_boxes, 1), max_boxes) - 1 for lv in lvls])
        return _one_hot(nb, max_boxes)

    key = f"levels-{train_path.name}-{len(train_levels)}-ref{len(test_levels)}-split{split_seed}"
    return GanData("levels", key, tx, vx, ty, vy, n_classes, cond(train_levels), cond(test_levels),
                   {"train_levels": train_levels, "test_levels": test_levels, "test_source": source})


def load_gan_data(spec: str, test_fraction: float = 0.25, split_seed: int = 0, levels_reference: str = "",
                  max_levels: int = 0, max_boxes: int = 6) -> GanData:
    """``digits`` | ``mnist:PATH`` | ``levels:PATH``."""
    if spec.startswith("levels:"):
        path = spec.split(":", 1)[1]
        if not path:
            raise UserError("--data levels:PATH needs a file or folder of Boxoban levels", exit_code=2)
        return load_levels_data(path, levels_reference, max_levels, test_fraction, split_seed, max_boxes)
    if spec == "digits" or spec.startswith("mnist:"):
        return load_images(spec, test_fraction, split_seed)
    raise UserError(f"unknown --data '{spec}': use digits, mnist:PATH or levels:PATH", exit_code=2)
