"""Digit data sets with a fixed-seed train/test split.

Images are returned as float32 tensors of shape (N, 1, H, W) scaled to
[-1, 1] (the range of a tanh generator), labels as int64 (N,).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from clm.core.errors import UserError

N_DIGIT_CLASSES = 10


@dataclass
class ImageSplit:
    """Train and test images (N, C, H, W) in [-1, 1] with their int labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def split_indices(n: int, test_fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-seed split of ``range(n)``; stratified by ``labels`` when given so
    that every class keeps its share in both halves."""
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    if labels is None:
        perm = rng.permutation(n)
        n_test = max(1, int(round(n * test_fraction)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, int(round(len(idx) * test_fraction)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def check_images(x: np.ndarray, name: str) -> None:
    """Reject data that would silently train garbage: empty, wrong rank, NaN."""
    if x.size == 0 or len(x) == 0:
        raise UserError(f"image data '{name}' is empty")
    if x.ndim != 4:
        raise UserError(f"image data '{name}' must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
        raise UserError(f"image data '{name}' holds NaN or infinite values ({bad} images)")


def _make_split(name: str, x: np.ndarray, y: np.ndarray, lo: float, hi: float,
                test_fraction: float, seed: int) -> ImageSplit:
    check_images(x, name)
    x = (2.0 * (x.astype(np.float32) - lo) / (hi - lo) - 1.0).astype(np.float32)
    tr, te = split_indices(len(x), test_fraction, seed, y)
    n_classes = int(y.max()) + 1
    return ImageSplit(name, torch.from_numpy(x[tr]), torch.from_numpy(y[tr]).long(),
                      torch.from_numpy(x[te]), torch.from_numpy(y[te]).long(), n_classes)


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """scikit-learn's UCI digits: 1,797 images of 8x8 pixels (values 0..16),
    10 classes; split stratified by class with a fixed seed."""
    d = load_digits()
    x = d.images.reshape(-1, 1, 8, 8)
    return _make_split("digits", x, d.target.astype(np.int64), 0.0, 16.0, test_fraction, seed)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UserError(f"cannot read IDX file {path}: {e}")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise UserError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[dtype_code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but the file holds {data.size} values (truncated?)")
    return data.reshape(dims)


def load_mnist_idx(images_path: str | Path, labels_path: str | Path | None = None,
                   test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """MNIST (or any IDX image file, N x H x W uint8) from local files. Labels
    default to the sibling file named like ``*-labels-idx1-ubyte[.gz]``."""
    images_path = Path(images_path)
    if not images_path.is_file():
        raise UserError(f"MNIST image file {images_path} does not exist")
    x = _read_idx(images_path)
    if x.ndim != 3:
        raise UserError(f"{images_path}: expected N x H x W images, got shape {x.shape}")
    if labels_path is None:
        guess = Path(str(images_path).replace("images-idx3", "labels-idx1"))
        labels_path = guess if guess != images_path and guess.is_file() else None
    if labels_path is None:
        raise UserError(f"no labels file found beside {images_path}; name it ...-labels-idx1-ubyte "
                        "(class balance and the FD-clf classifier need labels)")
    y = _read_idx(Path(labels_path)).astype(np.int64)
    if len(y) != len(x):
        raise UserError(f"{labels_path} holds {len(y)} labels for {len(x)} images")
    return _make_split("mnist", x[:, None].astype(np.float32), y, 0.0, 255.0, test_fraction, seed)


def load_image_data(spec: str, test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """``digits`` or ``mnist:PATH_TO_IMAGES_IDX``."""
    if spec == "digits":
        return load_digits_split(test_fraction, seed)
    if spec.startswith("mnist:"):
        return load_mnist_idx(spec.split(":", 1)[1], None, test_fraction, seed)
    raise UserError(f"unknown image data '{spec}': use digits or mnist:PATH", exit_code=2)


def resize_split(split: ImageSplit, size: int) -> ImageSplit:
    """The same split with every image resized to ``size`` x ``size`` pixels
    (bilinear up, area down), still in [-1, 1]: the art domain paints on a
    canvas larger than the 8x8 digits."""
    if size < 4:
        raise UserError(f"the canvas must be at least 4x4 pixels, got size={size}")

    def resize(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == size and x.shape[-2] == size:
            return x.clone()
        mode = "bilinear" if size > x.shape[-1] else "area"
        kw = {"align_corners": False} if mode == "bilinear" else {}
        return torch.nn.functional.interpolate(x.float(), size=(size, size), mode=mode, **kw).clamp(-1, 1)

    return ImageSplit(split.name, resize(split.train_x), split.train_y.clone(), resize(split.test_x),
                      split.test_y.clone(), split.n_classes)
