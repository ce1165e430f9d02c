"""Reductions: sum, mean, max over axes, and the stable log-sum-exp."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp
from ._checks import normalize_axis


def _expand(g, shape, axes, keepdims):
    """Re-insert reduced axes so ``g`` broadcasts against the input."""
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis("sum", axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return (_xp(g).broadcast_to(_expand(g, self.shape, self.axes, self.keepdims), self.shape),)


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis("mean", axis, a.ndim), keepdims
        self.count = 1
        for ax in self.axes:
            self.count *= a.shape[ax]
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand(g, self.shape, self.axes, self.keepdims) / self.count
        return (_xp(g).broadcast_to(g, self.shape),)


class Max(Function):
    """Max over axes; the gradient is split equally among tied maxima (subgradient)."""

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis("max", axis, a.ndim), keepdims
        out = a.max(axis=self.axes, keepdims=True)
        mask = a == out
        self.mask = mask / mask.sum(axis=self.axes, keepdims=True)
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        return (_expand(g, self.shape, self.axes, self.keepdims) * self.mask,)


class LogSumExp(Function):
    """log Σ exp(a) computed as m + log Σ exp(a − m) (no overflow); vjp = softmax."""

    def forward(self, a, axis=None, keepdims=False):
        xp = _xp(a)
        self.shape, self.axes, self.keepdims = a.shape, normalize_axis("logsumexp", axis, a.ndim), keepdims
        m = a.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf slice: avoid inf - inf
        e = xp.exp(a - m)
        s = e.sum(axis=self.axes, keepdims=True)
        self.softmax = e / s
        out = xp.log(s) + m
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in self.axes])

    def backward(self, g):
        return (_expand(g, self.shape, self.axes, self.keepdims) * self.softmax,)


def sum(a, axis=None, keepdims=False): return Sum.apply(a, axis=axis, keepdims=keepdims)  # noqa: A001
def mean(a, axis=None, keepdims=False): return Mean.apply(a, axis=axis, keepdims=keepdims)
def max(a, axis=None, keepdims=False): return Max.apply(a, axis=axis, keepdims=keepdims)  # noqa: A001
def logsumexp(a, axis=None, keepdims=False): return LogSumExp.apply(a, axis=axis, keepdims=keepdims)
