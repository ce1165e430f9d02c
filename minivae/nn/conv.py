"""Convolution layers with PyTorch's names, weight layouts and default initialisation.

* ``Conv2d``: ``weight`` (out, in, kh, kw), ``bias`` (out,).
* ``ConvTranspose2d``: ``weight`` (in, out, kh, kw), ``bias`` (out,); output size
  (H − 1)·stride − 2·padding + kernel + output_padding.

Default init (``init_scheme="pytorch"``) is U(±1/sqrt(fan_in)) for weights and biases,
with fan_in = weight.shape[1]·kh·kw as PyTorch computes it -- for ConvTranspose2d that is
out_channels·kh·kw, PyTorch's convention, kept so statistics match a PyTorch model.

``algorithm`` ("auto", "im2col" or "winograd", :func:`minivae.ops.conv.conv2d`) chooses
how the op computes the same function: "im2col" is the exact GEMM, "winograd" the
F(4×4, 2×2) transform of 4×4 stride-2 layers (float32 error ≈ 10× im2col's, see
:mod:`minivae.ops.winograd`), "auto" Winograd where it is measured faster.
"""
from __future__ import annotations

from ..ops.conv import ALGORITHMS, conv2d, conv_transpose2d, pair_arg
from . import init
from .module import Module, Parameter


class _ConvNd(Module):
    _op = ""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, bias, init_scheme, transposed,
                 algorithm="auto"):
        super().__init__()
        name = type(self).__name__
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{name}: unknown algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
        self.algorithm = algorithm
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"{name}: in_channels and out_channels must be positive, "
                             f"got {in_channels} and {out_channels}")
        self.kernel_size = pair_arg(name, "kernel_size", kernel_size, 1)
        self.stride = pair_arg(name, "stride", stride, 1)
        self.padding = pair_arg(name, "padding", padding, 0)
        channels = (self.in_channels, self.out_channels) if transposed else (self.out_channels, self.in_channels)
        shape = channels + self.kernel_size
        self.weight = Parameter(init.initialise(shape, init_scheme))
        fan_in = init.fans(shape)[0]
        self.bias = Parameter(init.pytorch_default((self.out_channels,), fan_in=fan_in)) if bias else None

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}({self.in_channels}, {self.out_channels}): expected input "
                             f"of shape (batch, {self.in_channels}, height, width), got {tuple(x.shape)}")

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
                + ("" if self.algorithm == "auto" else f", algorithm={self.algorithm!r}"))


class Conv2d(_ConvNd):
    """y = conv2d(x, W) + b  (NCHW; cross-correlation, as in PyTorch)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, init_scheme: str = "pytorch", algorithm: str = "auto"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, init_scheme,
                         transposed=False, algorithm=algorithm)

    def forward(self, x):
        self._check_input(x)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, algorithm=self.algorithm)


class ConvTranspose2d(_ConvNd):
    """y = conv_transpose2d(x, W) + b: the adjoint of Conv2d in its input (an upsampling layer)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True, init_scheme: str = "pytorch", algorithm: str = "auto"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, init_scheme,
                         transposed=True, algorithm=algorithm)
        self.output_padding = pair_arg(type(self).__name__, "output_padding", output_padding, 0)
        if self.output_padding[0] >= self.stride[0] or self.output_padding[1] >= self.stride[1]:
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride}")

    def forward(self, x):
        self._check_input(x)
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                algorithm=self.algorithm)

    def extra_repr(self):
        return super().extra_repr() + f", output_padding={self.output_padding}"


def set_algorithm(module, algorithm: str):
    """Set ``algorithm`` on every convolution layer inside ``module``; returns how many."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    layers = [m for _, m in module.named_modules() if isinstance(m, _ConvNd)]
    for layer in layers:
        layer.algorithm = algorithm
    return len(layers)
