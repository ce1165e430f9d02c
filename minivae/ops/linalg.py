"""Matrix products: ``matmul`` (with batch broadcasting) and the fused affine map of a
dense layer, ``linear(x, W, b) = x Wᵀ + b`` with PyTorch's ``(out, in)`` weight layout."""
from __future__ import annotations

from ..autograd import Function, unbroadcast
from ..backend import get_array_module as _xp
from . import _parallel
from ._checks import check_same_dtype


class MatMul(Function):
    """C = A @ B;  dA = G Bᵀ,  dB = Aᵀ G  (batch dimensions un-broadcast)."""

    def forward(self, a, b):
        check_same_dtype("matmul", a, b)
        if a.ndim < 1 or b.ndim < 1 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                             f"(last dimension of the first must equal the "
                             f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the second)")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 1 or b.ndim == 1:  # promote vectors as NumPy does, then undo
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = g.reshape(a2.shape[:-1] + b2.shape[-1:]) if g.ndim else g.reshape(1, 1)
            ga = (g2 @ b2.swapaxes(-1, -2)).reshape(a.shape) if a.ndim == 1 else g2 @ b2.swapaxes(-1, -2)
            gb = (a2.swapaxes(-1, -2) @ g2)
            return unbroadcast(ga, a.shape) if a.ndim > 1 else ga.reshape(-1, a.shape[0]).sum(0), \
                (gb.reshape(-1, b.shape[0]).sum(0) if b.ndim == 1 else unbroadcast(gb, b.shape))
        return (unbroadcast(g @ b.swapaxes(-1, -2), a.shape),
                unbroadcast(a.swapaxes(-1, -2) @ g, b.shape))


class Linear(Function):
    """y = x Wᵀ + b for x of shape (N, in), W of shape (out, in): one GEMM each way.

    vjp: dx = G W,  dW = Gᵀ x,  db = Σ_n G. On the CPU each product's rows are split over
    the workers of :mod:`._parallel`.
    """

    def forward(self, x, weight, bias=None):
        check_same_dtype("linear", x, weight)
        if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                             f"{weight.shape} (expected input (batch, {weight.shape[1]}))")
        self.x, self.weight = x, weight
        out = _parallel.matmul(_xp(x), x, weight.T)
        if bias is not None:
            out += bias
        return out

    def backward(self, g):
        # the data batch needs no gradient: skip its GEMM (a sixth of a dense VAE's work)
        xp = _xp(g)
        gx = _parallel.matmul(xp, g, self.weight) if self.parents[0].requires_grad else None
        gw = _parallel.matmul(xp, g.T, self.x) if self.parents[1].requires_grad else None
        if len(self.parents) == 3:
            return gx, gw, g.sum(axis=0)
        return gx, gw


def matmul(a, b): return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)
