"""What a GAN trains on, and what it needs from the domain of its data.

:class:`GanData`: train/test tensors (N, C, H, W), integer labels for the
FD-clf feature classifier, and condition vectors for conditional G and D;
``categorical`` data (tile grids, one channel per tile) gets a tile
generator, the rest a pixel generator in [-1, 1].

:class:`GanDomain`: gan/ knows no domain. Reading the data, drawing G's
samples as pictures, the domain's own metrics and any loss term of its own
come from an object of this shape; :mod:`clm.gan_adapters.domains` has one
per domain (images; Sokoban levels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from clm.core.errors import UserError


@dataclass
class GanData:
    """Train/test data of one data set, as the GAN and the metrics see it."""

    kind: str  # the domain's name for its data ("images", "levels"); gan/ reads only ``categorical``
    key: str  # names the data set and split, e.g. "digits-split0-test0.25" (classifier cache key)
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    train_cond: torch.Tensor
    test_cond: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)  # the domain's own (levels: train_levels, test_levels, test_source)
    categorical: bool = False  # one channel per category (tile grids): G outputs per-cell probabilities

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


class GanDomain(Protocol):
    """What ``clm gan train | sample | eval`` needs from the domain of its data."""

    def load(self, cfg) -> GanData:
        """The data ``cfg.data`` names, split as the config says."""

    def picture(self, G, z, cond, cfg, data: GanData, device) -> np.ndarray:
        """An RGB uint8 grid (H, W, 3) of G's samples for ``z`` (and ``cond``)."""

    def evaluate(self, G, D, data: GanData, cfg, ref, n: int, pool, device, generator) -> dict[str, Any]:
        """Every metric of ``n`` samples (the generic ones against ``ref`` and the domain's own)."""

    def write_samples(self, G, D, data: GanData, cfg, n: int, out: Path, seed: int, device) -> None:
        """``n`` samples into ``out`` in one of ``sample_suffixes``."""

    sample_suffixes: tuple[str, ...]
    memorisation_in_pixels: bool  # whether the generic L2 memorisation threshold applies
