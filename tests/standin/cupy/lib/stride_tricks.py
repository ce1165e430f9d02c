"""``cupy.lib.stride_tricks.as_strided``: a strided view of device memory (strides in bytes)."""
import numpy as _np

from .. import _core


def as_strided(x, shape=None, strides=None):
    if type(x) is not _core.ndarray:
        raise TypeError(f"as_strided needs a device array, got {type(x)}")
    return _core._new(_np.lib.stride_tricks.as_strided(x._a, shape, strides))
