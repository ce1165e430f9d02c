"""Elementwise arithmetic with NumPy broadcasting; each vjp next to its forward.

Broadcast inputs receive gradients summed back to their own shape
(:func:`minivae.autograd.unbroadcast`).
"""
from __future__ import annotations

from ..autograd import Function, unbroadcast
from ..backend import get_array_module as _xp
from ._checks import broadcast_shape, check_same_dtype


class _Binary(Function):
    op_name = "binary op"

    def _check(self, a, b):
        check_same_dtype(self.op_name, a, b)
        broadcast_shape(self.op_name, a.shape, b.shape)
        self.a_shape, self.b_shape = a.shape, b.shape


class Add(_Binary):
    op_name = "add"

    def forward(self, a, b):
        self._check(a, b)
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(_Binary):
    op_name = "sub"

    def forward(self, a, b):
        self._check(a, b)
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(-g, self.b_shape)


class Mul(_Binary):
    op_name = "mul"

    def forward(self, a, b):
        self._check(a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return unbroadcast(g * self.b, self.a_shape), unbroadcast(g * self.a, self.b_shape)


class Div(_Binary):
    op_name = "div"

    def forward(self, a, b):
        self._check(a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        return unbroadcast(ga, self.a_shape), unbroadcast(-ga * self.a / self.b, self.b_shape)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """x ** p for a constant exponent p:  d/dx = p x^(p-1)."""

    def forward(self, a, exponent):
        self.a, self.p = a, exponent
        return a ** exponent

    def backward(self, g):
        return (g * self.p * self.a ** (self.p - 1),)


class Exp(Function):
    def forward(self, a):
        self.out = _xp(a).exp(a)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return _xp(a).log(a)

    def backward(self, g):
        return (g / self.a,)


class Sqrt(Function):
    def forward(self, a):
        self.out = _xp(a).sqrt(a)
        return self.out

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(Function):
    def forward(self, a):
        xp = _xp(a)
        self.sign = xp.sign(a)
        return xp.abs(a)

    def backward(self, g):
        return (g * self.sign,)


class Where(_Binary):
    """``cond ? a : b`` with a constant boolean ``cond``; gradient flows to the chosen side."""
    op_name = "where"

    def forward(self, a, b, cond):
        self._check(a, b)
        xp = _xp(a)
        self.cond = xp.asarray(cond, dtype=bool)
        broadcast_shape("where", self.cond.shape, broadcast_shape("where", a.shape, b.shape))
        return xp.where(self.cond, a, b)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = _xp(g)
        return (unbroadcast(xp.where(self.cond, g, zero), self.a_shape),
                unbroadcast(xp.where(self.cond, zero, g), self.b_shape))


class Clip(Function):
    """Clamp to [lo, hi]; the gradient is passed where the input lies inside the interval."""

    def forward(self, a, lo, hi):
        xp = _xp(a)
        self.inside = xp.ones(a.shape, dtype=bool)
        if lo is not None:
            self.inside &= a >= lo
        if hi is not None:
            self.inside &= a <= hi
        return xp.clip(a, lo, hi)

    def backward(self, g):
        return (g * self.inside,)


# functional forms ------------------------------------------------------------------

def add(a, b): return Add.apply(a, b)
def sub(a, b): return Sub.apply(a, b)
def mul(a, b): return Mul.apply(a, b)
def div(a, b): return Div.apply(a, b)
def neg(a): return Neg.apply(a)
def pow(a, exponent: float): return Pow.apply(a, exponent=exponent)  # noqa: A001
def exp(a): return Exp.apply(a)
def log(a): return Log.apply(a)
def sqrt(a): return Sqrt.apply(a)
def abs(a): return Abs.apply(a)  # noqa: A001
def square(a): return Mul.apply(a, a)
def where(cond, a, b): return Where.apply(a, b, cond=getattr(cond, "data", cond))
def clip(a, lo=None, hi=None): return Clip.apply(a, lo=lo, hi=hi)
