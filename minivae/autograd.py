"""Reverse-mode automatic differentiation: the :class:`Tensor` and the graph.

Each differentiable operation is a small :class:`Function` subclass whose
``forward`` and ``backward`` (its vector-Jacobian product) sit side by side
(micrograd's closeness, tinygrad's ``Function`` shape). ``Tensor.backward``
walks the graph in reverse topological order found *iteratively* (no recursion
limit on deep graphs) and **accumulates** gradients when a tensor feeds several
consumers -- in a VAE, μ and logvar feed both the KL term and the
reparameterisation, so overwriting instead of adding would be wrong.

Arithmetic operators on :class:`Tensor` are installed by :mod:`minivae.ops`,
which sits one layer above this module (lower layers never import higher ones).
"""
from __future__ import annotations

import contextlib

import numpy

from . import backend

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Context in which operations record no graph (evaluation, EMA updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class Tensor:
    """An array of the active backend, with an optional gradient.

    ``data`` is a NumPy or CuPy array. ``grad`` is ``None`` until a backward pass
    reaches this tensor; later passes *add* to it (PyTorch semantics), so
    optimisers zero it between steps. Gradients are kept only for tensors with
    ``requires_grad=True`` that were not produced by an operation (leaves).
    """

    __slots__ = ("data", "grad", "requires_grad", "_fn", "name", "__weakref__")
    __array_priority__ = 1000  # make ``ndarray * Tensor`` defer to Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        module = backend.get_array_module(data)
        if module is numpy and backend.name() != "numpy":
            module = backend.xp()  # host data for a GPU tensor: copy it over
        if dtype is None and not hasattr(data, "dtype"):
            dtype = backend.default_dtype()  # Python lists/scalars: like torch.tensor
        data = module.asarray(data, dtype=dtype)
        if data.dtype.kind in "biu":
            data = data.astype(backend.default_dtype())
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._fn = None
        self.name = name

    # -- array-like conveniences -------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{grad})"

    def numpy(self) -> numpy.ndarray:
        """The values as a NumPy array on the host (copied from the GPU if needed)."""
        return backend.to_host(self.data)

    def item(self) -> float:
        return float(self.data.reshape(-1)[0]) if self.data.size == 1 else _not_scalar("item", self.shape)

    def detach(self) -> "Tensor":
        """The same values, cut from the graph (a stop-gradient)."""
        return Tensor(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._fn is None

    def zero_grad(self) -> None:
        self.grad = None

    # -- backward ------------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Back-propagate from this tensor, accumulating ``.grad`` on the leaves.

        ``grad`` is the upstream gradient; it may be omitted only for a tensor
        with one element (a loss).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() on a non-scalar tensor of shape {self.shape} needs "
                                   "an explicit gradient of the same shape (or reduce it to a scalar first)")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): gradient shape {grad.shape} does not match tensor shape {self.shape}")

        order = _topological_order(self)
        grads = {id(self): grad}
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node._fn
            if fn is None:  # a leaf: accumulate into .grad
                _accumulate_leaf(node, g)
                continue
            parent_grads = fn.backward(g)
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            for parent, pg in zip(fn.parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg


def _not_scalar(what, shape):
    raise ValueError(f"{what}() needs a tensor with one element, got shape {shape}")


def _accumulate_leaf(tensor: Tensor, g) -> None:
    if g.shape != tensor.shape:  # defensive: an op's vjp must return its input's shape
        raise RuntimeError(f"internal error: gradient of shape {g.shape} for tensor of shape {tensor.shape}")
    if tensor.grad is None:
        tensor.grad = g.copy()
    else:
        tensor.grad += g  # in place: the optimiser's flat gradient buffer is a view target


def _topological_order(root: Tensor) -> list:
    """Nodes reachable from ``root``, each after all its consumers (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._fn is not None:
            for parent in node._fn.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` = its vjp.

    Subclasses implement ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad) -> tuple`` (one gradient array, or ``None``, per tensor
    input, in order). Anything ``backward`` needs is stored on ``self``.
    """

    __slots__ = ("parents", "__dict__")

    def __init__(self, parents):
        self.parents = parents

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        tensors = tuple(as_tensor(x, like=inputs) for x in inputs)
        fn = cls(tensors)
        out = Tensor.__new__(Tensor)
        out.data = fn.forward(*(t.data for t in tensors), **params)
        out.grad = None
        out.name = None
        out.requires_grad = _grad_enabled and any(t.requires_grad for t in tensors)
        out._fn = fn if out.requires_grad else None
        return out


def as_tensor(value, like=()) -> Tensor:
    """Wrap ``value`` in a Tensor; Python/NumPy scalars take the dtype of a Tensor in ``like``.

    Mixing float32 and float64 *tensors* is refused by the ops (see
    :func:`minivae.ops.check_same_dtype`); scalars never force an upcast.
    """
    if isinstance(value, Tensor):
        return value
    dtype = None
    for other in like:
        if isinstance(other, Tensor):
            dtype = other.dtype
            break
    if dtype is None:
        dtype = backend.default_dtype()
    if numpy.isscalar(value) or (isinstance(value, numpy.ndarray) and value.ndim == 0):
        xp = _module_of(like)
        return Tensor(xp.full((), value, dtype=dtype))  # made on the device: no host copy
    return Tensor(value)


def _module_of(tensors):
    for t in tensors:
        if isinstance(t, Tensor):
            return backend.get_array_module(t.data)
    return backend.xp()


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the vjp of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
