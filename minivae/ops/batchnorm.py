"""Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1) as one op with an analytic vjp.

Per channel c (axis 1), over the M = N (·H·W) values of the batch:

    train:  μ = mean(x),  σ² = mean((x − μ)²)          (biased, used to normalise)
            x̂ = (x − μ) / sqrt(σ² + ε),   y = γ x̂ + β
            running_mean ← (1 − m)·running_mean + m·μ
            running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)   (unbiased: PyTorch's convention)
    eval:   x̂ = (x − running_mean) / sqrt(running_var + ε),  y = γ x̂ + β

vjp (g = ∂L/∂y, sums over the M values of a channel):

    train:  ∂x = γ/sqrt(σ² + ε) · (g − Σg/M − x̂ · Σ(g x̂)/M)
    eval:   ∂x = γ/sqrt(running_var + ε) · g                     (the affine map)
    both:   ∂γ = Σ g x̂,   ∂β = Σ g
"""
from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import get_array_module as _xp
from ._checks import check_same_dtype


def _stat_axes(op, x, num_features):
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{op}: expected input of shape (N, C), (N, C, L) or (N, C, H, W), got {tuple(x.shape)}")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} has {x.shape[1]} channels but the "
                         f"parameters/statistics have shape ({num_features},)")
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast along axis 1 of an ndim-D input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNorm(Function):
    """y = γ x̂ + β with x̂ normalised by batch (train) or running (eval) statistics."""

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        op = "batch_norm"
        check_same_dtype(op, x, *(a for a in (weight, bias) if a is not None))
        channels = {tuple(a.shape) for a in (weight, bias, running_mean, running_var) if a is not None}
        if len(channels) > 1 or any(len(s) != 1 for s in channels):
            raise ValueError(f"{op}: weight, bias, running_mean and running_var must all have shape (C,), "
                             f"got shapes {sorted(channels)}")
        axes = _stat_axes(op, x, next(iter(channels))[0] if channels else None)
        count = x.size // x.shape[1]
        batch_stats = training or running_mean is None
        if batch_stats:
            if count < 2:
                raise ValueError(f"{op}: training needs more than one value per channel, got input of "
                                 f"shape {tuple(x.shape)} (use a larger batch, or eval mode)")
            mean = x.mean(axis=axes)
            centred = x - _per_channel(mean, x.ndim)
            var = (centred * centred).mean(axis=axes)
        else:
            mean = running_mean.astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
            centred = x - _per_channel(mean, x.ndim)
        inv_std = 1.0 / _xp(x).sqrt(var + eps)
        xhat = centred
        xhat *= _per_channel(inv_std, x.ndim)   # in place: centred is a fresh array
        if training and running_mean is not None:   # in place: the module's buffers
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
            running_var *= 1.0 - momentum
            running_var += (momentum * count / (count - 1)) * var
        scale = inv_std if weight is None else weight * inv_std
        self.xhat, self.scale, self.count, self.batch_stats = xhat, scale, count, batch_stats
        self.axes, self.affine = axes, weight is not None
        out = xhat * _per_channel(weight, x.ndim) if weight is not None else xhat.copy()
        if bias is not None:
            out += _per_channel(bias, x.ndim)
        return out

    def backward(self, g):
        nd, xhat = g.ndim, self.xhat
        g_sum = g.sum(axis=self.axes)
        gx_sum = (g * xhat).sum(axis=self.axes)
        if self.batch_stats:
            gx = g - _per_channel(g_sum / self.count, nd)
            gx -= xhat * _per_channel(gx_sum / self.count, nd)
            gx *= _per_channel(self.scale, nd)
        else:
            gx = g * _per_channel(self.scale, nd)
        grads = (gx,)
        if len(self.parents) > 1:
            grads += (gx_sum,)
        if len(self.parents) > 2:
            grads += (g_sum,)
        return grads


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch normalisation over axis 1 of an (N, C), (N, C, L) or (N, C, H, W) tensor.

    ``weight`` and ``bias`` are (C,) tensors or ``None`` (no affine map); ``running_mean``
    and ``running_var`` are (C,) backend arrays updated in place when ``training``, or
    ``None`` (batch statistics in both modes). ``momentum`` weights the new batch.
    """
    if (weight is None) != (bias is None):
        raise ValueError("batch_norm: give both weight and bias, or neither (no affine map)")
    stats = [s.data if isinstance(s, Tensor) else s for s in (running_mean, running_var)]
    if (stats[0] is None) != (stats[1] is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    args = (x,) if weight is None else (x, weight, bias)
    return BatchNorm.apply(*args, running_mean=stats[0], running_var=stats[1], training=bool(training),
                           momentum=momentum, eps=eps)
