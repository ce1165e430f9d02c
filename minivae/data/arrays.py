"""Image arrays from anywhere: conversion to the (N, C, H, W) float32 [0, 1] contract,
``.npy`` / ``.npz`` files, and resizing.

Accepted layouts are ``(N, H, W)``, ``(N, H, W, C)`` and ``(N, C, H, W)``; the
channel axis of a 4-D array is the one of size 1, 3 or 4 (pass ``layout`` when
both or neither are). Accepted values: unsigned-byte style integers in
[0, 255] (divided by 255), booleans, or floats in [0, 1]. Files are read with
``allow_pickle=False``: an object array is refused, never unpickled.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .dataset import DataError

LAYOUTS = ("nchw", "nhwc")
_CHANNELS = (1, 3, 4)
IMAGE_KEYS = ("images", "x", "data", "arr_0")      # .npz keys tried in order
LABEL_KEYS = ("labels", "y", "targets")


def _layout(shape, layout, source):
    if layout is not None:
        if layout not in LAYOUTS:
            raise DataError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
        return layout
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if first != last:
        return "nchw" if first else "nhwc"
    why = "both axis 1 and axis 3" if first else "neither axis 1 nor axis 3"
    raise DataError(f"{source}: cannot tell the channel axis of an array of shape {shape}: "
                    f"{why} could hold 1, 3 or 4 channels; save the array with an unambiguous channel axis (or, "
                    "in Python, pass layout='nchw' or 'nhwc' to minivae.data.load_dataset)")


def to_images(array, layout: str | None = None, source: str = "array") -> np.ndarray:
    """Convert an image array to float32 ``(N, C, H, W)`` in [0, 1], or raise :class:`DataError`."""
    a = np.asarray(array)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise DataError(f"{source}: images must be numbers, found dtype {a.dtype}")
    if a.ndim not in (3, 4):
        raise DataError(f"{source}: images must have shape (N, H, W), (N, H, W, C) or "
                        f"(N, C, H, W), found rank {a.ndim} shape {a.shape}"
                        + ("; reshape flat images to (N, H, W) first" if a.ndim == 2 else ""))
    if min(a.shape) == 0:
        raise DataError(f"{source}: empty image array of shape {a.shape}")
    if a.ndim == 3:
        a = a[:, None]
    elif _layout(a.shape, layout, source) == "nhwc":
        a = a.transpose(0, 3, 1, 2)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            raise DataError(f"{source}: {int(bad.sum())} pixel value(s) are NaN or inf; "
                            "clean the array before training")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            hint = " (it looks like [0, 255]: divide by 255 or store uint8)" if hi <= 255 and lo >= 0 else ""
            raise DataError(f"{source}: float images must lie in [0, 1], found [{lo:g}, {hi:g}]{hint}")
        return np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype.kind == "b":
        return np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype != np.uint8:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{source}: integer images must lie in [0, 255], found [{lo}, {hi}]")
    out = np.empty(a.shape, dtype=np.float32)
    np.divide(a, np.float32(255), out=out, casting="unsafe")    # correctly rounded; 255 -> 1.0
    return out


def _read(z, key, path):
    try:
        return z[key]
    except ValueError as exc:       # "Object arrays cannot be loaded when allow_pickle=False"
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise DataError(f"{path}: array {key!r} holds Python objects (dtype=object), which "
                            "minivae never unpickles; save a numeric array instead") from None
        raise DataError(f"{path}: cannot read array {key!r} ({exc})") from None


def load_array_file(path, key: str | None = None, split: str | None = None):
    """``(images, labels or None, has_split)`` from a ``.npy`` or ``.npz`` file, raw.

    In an ``.npz`` the images are ``key``, else the first of :data:`IMAGE_KEYS`
    present, else its only array; labels are the first of :data:`LABEL_KEYS`.
    An ``.npz`` holding ``x_train``/``x_test`` (Keras' layout) gives the
    requested ``split`` itself (``has_split`` True), with ``y_<split>`` labels.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"array file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise DataError(f"{path}: holds Python objects (dtype=object), which minivae never "
                            "unpickles; save a numeric array instead") from None
        raise DataError(f"{path}: not a readable .npy/.npz array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None, False
    with loaded as z:
        keys = list(z.files)
        if split is not None and f"x_{split}" in keys:
            labels = _read(z, f"y_{split}", path) if f"y_{split}" in keys else None
            return _read(z, f"x_{split}", path), labels, True
        if key is None:
            key = next((k for k in IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(f"{path}: holds several arrays ({', '.join(keys)}) and none is named "
                                f"{' / '.join(IMAGE_KEYS[:3])}; save the images under the name 'images' (or, in "
                                "Python, pass key=NAME to minivae.data.load_dataset)")
        elif key not in keys:
            raise DataError(f"{path}: has no array {key!r}; it holds: {', '.join(keys)}")
        label_key = next((k for k in LABEL_KEYS if k in keys and k != key), None)
        labels = _read(z, label_key, path) if label_key else None
        return _read(z, key, path), labels, False


def check_labels(labels, n: int, source: str):
    """Integer class labels ``(n,)`` as int64, or one clear error."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub" or labels.shape != (n,):
        raise DataError(f"{source}: labels must be {n} integers, found {labels.dtype} {labels.shape}")
    return labels.astype(np.int64)


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear-interpolation weights, widened when shrinking (anti-aliasing,
    as PIL's bilinear filter does); rows sum to 1, so values stay in [0, 1]."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale            # output pixel centres, input coordinates
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in) + 0.5 - centres[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """Resize float ``(N, C, H, W)`` images to ``size`` (an int or ``(h, w)``), separably."""
    h, w = (size, size) if np.isscalar(size) else tuple(size)
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise DataError(f"image size must be a positive integer or (height, width), got {size!r}")
    if images.shape[2:] == (h, w):
        return images
    rows, cols = _resize_weights(images.shape[2], int(h)), _resize_weights(images.shape[3], int(w))
    out = np.matmul(rows, np.matmul(images, cols.T))
    return np.clip(out, 0.0, 1.0, out=out)
