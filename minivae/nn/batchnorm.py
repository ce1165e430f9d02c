"""Batch-normalisation layers with PyTorch's names: ``weight``, ``bias`` (parameters) and
``running_mean``, ``running_var``, ``num_batches_tracked`` (buffers, saved in checkpoints).

Train mode normalises by the batch statistics and updates the running ones in place
(momentum 0.1, unbiased running variance: PyTorch's convention); eval mode
(``module.eval()``) normalises by the running statistics. See :mod:`minivae.ops.batchnorm`
for the equations (Ioffe & Szegedy 2015, Algorithm 1).
"""
from __future__ import annotations

from .. import backend
from ..ops.batchnorm import batch_norm
from .module import Module, Parameter


class _BatchNorm(Module):
    _input_dims: tuple = ()
    _input_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        if self.num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got {num_features}")
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        xp, dtype = backend.xp(), backend.default_dtype()
        if self.affine:
            self.weight = Parameter(xp.ones(self.num_features, dtype=dtype))
            self.bias = Parameter(xp.zeros(self.num_features, dtype=dtype))
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", xp.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", xp.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", xp.zeros((), dtype=xp.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x):
        if x.ndim not in self._input_dims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of shape "
                             f"{self._input_text.format(self.num_features)}, got {tuple(x.shape)}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked[...] += 1   # in place: rebinding would unregister the buffer
            if self.momentum is None:   # PyTorch: cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        return batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                          training=self.training, momentum=momentum, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Normalises each feature of (N, C) or (N, C, L) inputs over the batch (and L)."""

    _input_dims = (2, 3)
    _input_text = "(batch, {0}) or (batch, {0}, length)"


class BatchNorm2d(_BatchNorm):
    """Normalises each channel of (N, C, H, W) inputs over the batch and the pixels."""

    _input_dims = (4,)
    _input_text = "(batch, {0}, height, width)"
