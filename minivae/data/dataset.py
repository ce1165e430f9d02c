"""The common result type of every loader, and the data layer's error classes.

Every dataset, whatever its source, arrives as float32 images in [0, 1] laid out
``(N, C, H, W)`` on the host; the training loop moves batches to the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """Bad data or a bad data request; the message says what to do about it."""


class ChecksumError(DataError):
    """A data file's SHA-256 differs from the published one (corrupt or wrong file)."""


class MissingDataError(DataError, FileNotFoundError):
    """Data files are absent and could not be downloaded; the message says where to put them."""


@dataclass(repr=False)
class Dataset:
    """Images and what is known about them.

    images        float32 ``(N, C, H, W)``, finite, in [0, 1]
    labels        int64 ``(N,)`` class indices, or None
    factors       float32 ``(N, K)`` true generative factors (``sprites``), or None
    factor_names  K names, one per column of ``factors``
    label_names   class names, one per label value, or None
    name, split   where it came from: e.g. ``"mnist"``, ``"train"``
    """
    images: np.ndarray
    labels: np.ndarray | None = None
    factors: np.ndarray | None = None
    factor_names: tuple | None = None
    name: str = "array"
    split: str = "train"
    label_names: tuple | None = None

    def __post_init__(self):
        x = self.images
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            got = f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
            raise DataError(f"Dataset images must be a float32 NumPy array (N, C, H, W), got {got}; "
                            "convert with minivae.data.to_images(array)")
        if len(x) == 0:
            raise DataError(f"dataset {self.name!r} ({self.split}) has no images")
        lo, hi = float(x.min()), float(x.max())        # NaN propagates into lo/hi
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError(f"dataset {self.name!r} contains NaN or inf pixel values")
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"dataset {self.name!r} images must lie in [0, 1], found [{lo:g}, {hi:g}]")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (len(x),):
                raise DataError(f"labels have shape {self.labels.shape}, expected ({len(x)},)")
        if self.factors is not None:
            self.factors = np.asarray(self.factors, dtype=np.float32)
            names = tuple(self.factor_names or ())
            if self.factors.ndim != 2 or len(self.factors) != len(x) or \
                    len(names) != self.factors.shape[1]:
                raise DataError(f"factors of shape {self.factors.shape} do not match {len(x)} "
                                f"images and factor names {names}")
            self.factor_names = names

    @property
    def shape(self) -> tuple:
        """The shape of one example, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "Dataset":
        """The examples at ``indices`` (a slice, an index array or a boolean mask)."""
        pick = (lambda a: None if a is None else a[indices])
        return Dataset(self.images[indices], pick(self.labels), pick(self.factors),
                       self.factor_names, self.name, self.split, self.label_names)

    def __repr__(self) -> str:
        extras = [k for k in ("labels", "factors") if getattr(self, k) is not None]
        return (f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={self.shape}, with={extras or 'images only'})")
