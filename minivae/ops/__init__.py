"""Differentiable operations on :class:`~minivae.autograd.Tensor`.

Each op is a :class:`~minivae.autograd.Function` whose forward and vector-Jacobian
product sit side by side in the file of its family. Importing this package also
installs the arithmetic operators and array-style methods on ``Tensor`` (the
autograd layer below cannot import the ops itself).
"""
from ..autograd import Tensor
from .activation import elu, leaky_relu, log_sigmoid, relu, sigmoid, softplus, tanh
from .elementwise import abs, add, clip, div, exp, log, mul, neg, pow, sqrt, square, sub, where  # noqa: A004
from .batchnorm import batch_norm
from .conv import conv2d, conv_transpose2d
from .linalg import linear, matmul
from .reduce import logsumexp, max, mean, sum  # noqa: A004
from .shape import concatenate, flatten, getitem, reshape, transpose

__all__ = ["abs", "add", "batch_norm", "clip", "concatenate", "conv2d", "conv_transpose2d", "div", "elu", "exp", "flatten", "getitem",
           "leaky_relu", "linear", "log", "log_sigmoid", "logsumexp", "matmul", "max", "mean",
           "mul", "neg", "pow", "relu", "reshape", "sigmoid", "softplus", "sqrt", "square", "sub",
           "sum", "tanh", "transpose", "where"]


def _install_tensor_methods():
    def rsub(a, b): return sub(b, a)
    def rdiv(a, b): return div(b, a)

    def _pow(a, p):
        if isinstance(p, Tensor):
            raise TypeError("tensor ** tensor is not supported: use exp(p * log(x))")
        return pow(a, p)

    methods = {
        "__add__": add, "__radd__": add, "__sub__": sub, "__rsub__": rsub,
        "__mul__": mul, "__rmul__": mul, "__truediv__": div, "__rtruediv__": rdiv,
        "__neg__": neg, "__pow__": _pow, "__matmul__": matmul,
        "__rmatmul__": lambda a, b: matmul(b, a), "__getitem__": getitem,
        "sum": sum, "mean": mean, "max": max, "logsumexp": logsumexp,
        "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "square": square,
        "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softplus": softplus,
        "clip": clip, "flatten": flatten,
        "reshape": lambda a, *shape: reshape(a, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape),
        "transpose": lambda a, *axes: transpose(a, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None),
        "T": property(lambda a: transpose(a)),
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)


_install_tensor_methods()
