"""Datasets for minivae, as host NumPy arrays (the training loop moves batches to the device).

* :func:`load_dataset` — ``sprites`` (generated, the default), ``mnist``,
  ``fashion-mnist``, ``cifar10``, or a ``.npy``/``.npz`` image array — returns a
  :class:`Dataset`: float32 images ``(N, C, H, W)`` in [0, 1], with labels and,
  for ``sprites``, the true generative factors.
* :class:`BatchIterator` — seeded shuffling mini-batches with a JSON state for
  exact resume.

Imports only NumPy and the standard library.
"""
from .arrays import load_array_file, resize_images, to_images
from .dataset import ChecksumError, DataError, Dataset, MissingDataError
from .download import DATA_ENV, OFFLINE_ENV, cache_dir, sha256_file
from .idx import IDXError, read_idx
from .loader import BatchIterator
from .registry import DATASETS, SPLITS, load_dataset
from .sprites import FACTOR_NAMES, SHAPES, make_sprites

__all__ = ["BatchIterator", "ChecksumError", "DATASETS", "DATA_ENV", "DataError", "Dataset",
           "FACTOR_NAMES", "IDXError", "MissingDataError", "OFFLINE_ENV", "SHAPES", "SPLITS",
           "cache_dir", "load_array_file", "load_dataset", "make_sprites", "read_idx",
           "resize_images", "sha256_file", "to_images"]
