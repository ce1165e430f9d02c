"""Shape operations: reshape, transpose, indexing/slicing, concatenation."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp
from . import _parallel


def _reshaped(a, shape):
    """``a.reshape(shape)``; when that must copy (e.g. flattening channels-last activations
    into a dense layer's rows) and the batch axis is kept, the copy runs per batch part on
    the CPU workers (:mod:`._parallel`)."""
    shape = tuple(shape)
    if (a.flags.c_contiguous or a.ndim == 0 or not shape or shape[0] != a.shape[0]
            or a.nbytes < _parallel.MIN_PARALLEL_BYTES or -1 in shape[:1]):
        return a.reshape(shape)
    xp = _xp(a)
    per_image = a[:1].reshape((1,) + shape[1:]).shape[1:]   # resolves -1, refuses a wrong size
    out = xp.empty((a.shape[0],) + per_image, dtype=a.dtype)

    def part(s):
        out[s].reshape(a[s].shape)[...] = a[s]   # out is C-ordered: its part reshapes as a view
    _parallel.map_parts(part, _parallel.parts(xp, a.shape[0]))
    return out


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        try:
            return _reshaped(a, shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                             f"({a.size} elements) into {tuple(shape)}") from None

    def backward(self, g):
        return (_reshaped(g, self.shape),)


class Transpose(Function):
    def forward(self, a, axes=None):
        self.axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
        if sorted(ax % a.ndim for ax in self.axes) != list(range(a.ndim)) or len(self.axes) != a.ndim:
            raise ValueError(f"transpose: axes {axes} are not a permutation of {a.ndim} dimensions")
        return a.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax % len(self.axes)] = i
        return (g.transpose(inverse),)


class GetItem(Function):
    """Basic and advanced indexing; the vjp scatters with ``add.at`` (repeated indices add)."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = _xp(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.index):
            out[self.index] = g
        else:
            xp.add.at(out, self.index, g)
        return (out,)


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        ref = arrays[0]
        for a in arrays[1:]:
            if a.ndim != ref.ndim or any(n != m for i, (n, m) in enumerate(zip(a.shape, ref.shape))
                                          if i != axis % ref.ndim):
                raise ValueError("concatenate: shapes " + ", ".join(str(x.shape) for x in arrays)
                                 + f" differ outside axis {axis}")
        self.axis = axis
        self.splits = [a.shape[axis] for a in arrays]
        return _xp(ref).concatenate(arrays, axis=axis)

    def backward(self, g):
        grads, start = [], 0
        for n in self.splits:
            index = [slice(None)] * g.ndim
            index[self.axis] = slice(start, start + n)
            grads.append(g[tuple(index)])
            start += n
        return tuple(grads)


def reshape(a, shape): return Reshape.apply(a, shape=tuple(shape))
def transpose(a, axes=None): return Transpose.apply(a, axes=axes)
def getitem(a, index): return GetItem.apply(a, index=getattr(index, "data", index))
def concatenate(tensors, axis=0): return Concatenate.apply(*tensors, axis=axis)
def flatten(a, start_dim=1): return reshape(a, a.shape[:start_dim] + (-1,))
