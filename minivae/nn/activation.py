"""Activation modules (wrappers of :mod:`minivae.ops.activation`)."""
from __future__ import annotations

from .. import ops
from .module import Module


class ReLU(Module):
    def forward(self, x): return ops.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x): return ops.leaky_relu(x, self.negative_slope)

    def extra_repr(self): return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x): return ops.elu(x, self.alpha)


class Sigmoid(Module):
    def forward(self, x): return ops.sigmoid(x)


class Tanh(Module):
    def forward(self, x): return ops.tanh(x)


class Softplus(Module):
    def forward(self, x): return ops.softplus(x)


class Identity(Module):
    def forward(self, x): return x


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU, "sigmoid": Sigmoid,
               "tanh": Tanh, "softplus": Softplus, "identity": Identity}


def activation(name: str) -> Module:
    """An activation module by name (for configs)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
