"""Activation functions in numerically stable forms (no overflow for any finite input)."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp


class ReLU(Function):
    def forward(self, a):
        self.mask = a > 0
        return a * self.mask

    def backward(self, g):
        return (g * self.mask,)


class LeakyReLU(Function):
    def forward(self, a, slope=0.01):
        self.scale = _xp(a).where(a > 0, a.dtype.type(1), a.dtype.type(slope))
        return a * self.scale

    def backward(self, g):
        return (g * self.scale,)


class ELU(Function):
    """x for x > 0, α(eˣ − 1) otherwise (Clevert et al. 2016); derivative α eˣ on the left."""

    def forward(self, a, alpha=1.0):
        xp = _xp(a)
        self.positive = a > 0
        self.left = alpha * xp.exp(xp.minimum(a, 0))
        return xp.where(self.positive, a, self.left - alpha)

    def backward(self, g):
        return (g * _xp(g).where(self.positive, 1, self.left),)


class Sigmoid(Function):
    def forward(self, a):
        xp = _xp(a)
        # 1/(1+e^-x) for x>=0 and e^x/(1+e^x) for x<0: neither branch overflows
        e = xp.exp(-xp.abs(a))
        self.out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return (g * self.out * (1 - self.out),)


class Tanh(Function):
    def forward(self, a):
        self.out = _xp(a).tanh(a)
        return self.out

    def backward(self, g):
        return (g * (1 - self.out * self.out),)


class Softplus(Function):
    """log(1 + eˣ) = max(x, 0) + log1p(e^−|x|); derivative sigmoid(x)."""

    def forward(self, a):
        xp = _xp(a)
        e = xp.exp(-xp.abs(a))
        self.sig = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return xp.maximum(a, 0) + xp.log1p(e)

    def backward(self, g):
        return (g * self.sig,)


class LogSigmoid(Function):
    """log σ(x) = −softplus(−x) = min(x, 0) − log1p(e^−|x|); derivative 1 − σ(x)."""

    def forward(self, a):
        xp = _xp(a)
        e = xp.exp(-xp.abs(a))
        self.one_minus_sig = xp.where(a >= 0, e / (1 + e), 1 / (1 + e))
        return xp.minimum(a, 0) - xp.log1p(e)

    def backward(self, g):
        return (g * self.one_minus_sig,)


def relu(a): return ReLU.apply(a)
def leaky_relu(a, negative_slope=0.01): return LeakyReLU.apply(a, slope=negative_slope)
def elu(a, alpha=1.0): return ELU.apply(a, alpha=alpha)
def sigmoid(a): return Sigmoid.apply(a)
def tanh(a): return Tanh.apply(a)
def softplus(a): return Softplus.apply(a)
def log_sigmoid(a): return LogSigmoid.apply(a)
