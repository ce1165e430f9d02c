"""Argument checks shared by the ops: clear errors instead of NumPy tracebacks."""
from __future__ import annotations

import numpy


def check_same_dtype(op: str, *arrays) -> None:
    """Refuse mixing float32 and float64 tensors (an accidental upcast halves speed
    and hides bugs); Python scalars are converted to the tensor's dtype upstream."""
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise TypeError(f"{op}: inputs have different dtypes ({names}); "
                        "convert one with .astype() or create both under the same default dtype")


def broadcast_shape(op: str, a_shape, b_shape):
    """The broadcast result shape, or a ValueError naming the op and both shapes."""
    try:
        return numpy.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be broadcast together") from None


def normalize_axis(op: str, axis, ndim: int):
    """Axis argument as a tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim)
    return tuple(out)
