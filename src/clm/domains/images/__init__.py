"""Images domain: handwritten digits (scikit-learn's 8x8 set, or MNIST from a
local IDX file) as float tensors in [-1, 1], plus rendering to image grids."""

from clm.domains.images.digits import ImageSplit, load_digits_split, load_mnist_idx, load_image_data
from clm.domains.images.render import image_grid, save_png

__all__ = ["ImageSplit", "load_digits_split", "load_mnist_idx", "load_image_data", "image_grid", "save_png"]
