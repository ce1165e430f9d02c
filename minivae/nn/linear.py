"""Dense layer with PyTorch's parameter names and layout: ``weight`` (out, in), ``bias`` (out,)."""
from __future__ import annotations

from .. import ops
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x Wᵀ + b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_scheme: str = "pytorch"):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = Parameter(init.initialise((self.out_features, self.in_features), init_scheme))
        # biases: PyTorch's U(±1/sqrt(fan_in)) for every scheme (zeros would also do)
        self.bias = Parameter(init.pytorch_default((self.out_features,), fan_in=self.in_features)) if bias else None

    def forward(self, x):
        if x.ndim != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): expected input of shape "
                             f"(batch, {self.in_features}), got {tuple(x.shape)}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"
