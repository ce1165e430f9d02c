"""Argument checks shared by the ops: clear errors instead of NumPy tracebacks."""
from __future__ import annotations

import operator

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


def pair_arg(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= ``minimum``, as a pair; else ValueError."""
    try:
        pair = (operator.index(value),) * 2 if not hasattr(value, "__len__") else \
            tuple(operator.index(v) for v in value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair


def check_conv_args(op, x, weight, bias, in_axis, out_axis):
    check_same_dtype(op, *((x, weight) if bias is None else (x, weight, bias)))
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W) and a 4-D weight, got input of shape "
                         f"{tuple(x.shape)} and weight of shape {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[in_axis]:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} has {x.shape[1]} channels but weight of "
                         f"shape {tuple(weight.shape)} expects {weight.shape[in_axis]} input channels")
    if bias is not None and tuple(bias.shape) != (weight.shape[out_axis],):
        raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} does not match weight of shape "
                         f"{tuple(weight.shape)} (expected ({weight.shape[out_axis]},))")
