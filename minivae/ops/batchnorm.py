"""Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1) as one op with an analytic vjp.

Per channel c (axis 1), over the M = N (·H·W) values of the batch:

    train:  μ = mean(x),  σ² = mean((x − μ)²)          (biased, used to normalise)
            x̂ = (x − μ) / sqrt(σ² + ε),   y = γ x̂ + β
            running_mean ← (1 − m)·running_mean + m·μ
            running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)   (unbiased: PyTorch's convention)
    eval:   x̂ = (x − running_mean) / sqrt(running_var + ε),  y = γ x̂ + β

Statistics in one pass over x, by the textbook algorithm on shifted data (Chan, Golub &
LeVeque 1983, "Algorithms for computing the sample variance: analysis and
recommendations", The American Statistician 37(3)): with a per-channel
shift K near μ (the mean of the first :data:`SHIFT_ROWS` rows) and d = x − K,

            δ = Σd/M = μ − K,   μ = K + δ,   σ² = Σd²/M − δ²

exact in real arithmetic for any K; in floating point the subtraction only cancels
the δ² ≪ σ² that K's distance from μ adds (no E[x²] − μ² cancellation: x ~ 10⁴ ± 1
keeps its digits, ``tests/test_batchnorm.py``). d is what the op stores, so
y = d·(γσ⁻¹) + (β − δγσ⁻¹) and Σ g x̂ = σ⁻¹ (Σ g d − δ Σ g).

vjp (g = ∂L/∂y, sums over the M values of a channel):

    train:  ∂x = γ/sqrt(σ² + ε) · (g − Σg/M − x̂ · Σ(g x̂)/M)
    eval:   ∂x = γ/sqrt(running_var + ε) · g                     (the affine map)
    both:   ∂γ = Σ g x̂,   ∂β = Σ g
"""
from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import get_array_module as _xp
from . import _parallel
from ._checks import check_same_dtype

# Rows per block on the CPU: a block's slice of x, x − K and the output (or g and ∂x)
# stay in L2 between the passes over it.
CPU_BLOCK_BYTES = 1 << 20

# The shift K of the statistics is the per-channel mean of this many leading rows (pixels
# of channels-last memory, else images): within a fraction of σ of μ in practice, and a
# mean, so one outlying value cannot carry it far.
SHIFT_ROWS = 8


def _check_input(op, x, num_features):
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{op}: expected input of shape (N, C), (N, C, L) or (N, C, H, W), got {tuple(x.shape)}")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} has {x.shape[1]} channels but the "
                         f"parameters/statistics have shape ({num_features},)")


class _Layout:
    """Views an (N, C, ...) array as (rows, C, cols) so per-channel sums are fast.

    Channels-last memory (what the convolutions produce) becomes (N·H·W, C, 1), whose
    channel sums are one GEMV; anything else becomes (N, C, H·W). The same layout is
    used for the gradient (a copy only if the gradient's memory order differs).
    """

    def __init__(self, x):
        self.shape = x.shape
        last = _xp(x).moveaxis(x, 1, -1) if x.ndim > 2 else None
        self.channels_last = last is not None and last.flags.c_contiguous and not x.flags.c_contiguous

    def to3(self, a):
        n, c = self.shape[:2]
        if a.ndim == 2:
            return a[:, :, None]
        if self.channels_last:
            return _xp(a).moveaxis(a, 1, -1).reshape(-1, c, 1)
        return a.reshape(n, c, -1)

    def from3(self, a3):
        if len(self.shape) == 2:
            return a3[:, :, 0]
        if self.channels_last:
            n, c, *spatial = self.shape
            return _xp(a3).moveaxis(a3.reshape(n, *spatial, c), -1, 1)
        return a3.reshape(self.shape)


def _channel_sums(a3):
    """Σ over axes 0 and 2 of a (rows, C, cols) array (one GEMV for cols = 1)."""
    if a3.shape[2] == 1:
        return _xp(a3).ones(a3.shape[0], dtype=a3.dtype) @ a3[:, :, 0]
    return a3.sum(axis=(0, 2))


def _channel_dots(a3, b3):
    """Σ over axes 0 and 2 of a3·b3, without the product as a temporary array."""
    if a3.shape[2] == 1:
        return _xp(a3).einsum("ij,ij->j", a3[:, :, 0], b3[:, :, 0])
    return _xp(a3).einsum("icj,icj->c", a3, b3)


def _bcast(v):
    """A (C,) vector shaped (1, C, 1) to broadcast against a (rows, C, cols) array."""
    return v.reshape(1, -1, 1)


def _blocks(xp, a3, part):
    """Row slices of ``part`` of a (rows, C, cols) array, ~``CPU_BLOCK_BYTES`` each on the CPU."""
    m = part.stop - part.start
    row_bytes = a3[0].size * a3.itemsize
    count = max(1, min(m, m * row_bytes // CPU_BLOCK_BYTES)) if xp.__name__ == "numpy" else 1
    bounds = [part.start + m * k // count for k in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _per_block(a3, body):
    """Run ``body(block_slice)`` over the rows of ``a3``: one part per CPU worker
    (:mod:`._parallel`), cache-sized blocks within a part. Returns the per-block results
    (channel sums) added in block order, or None."""
    xp = _xp(a3)

    def part_work(part):
        total = None
        for block in _blocks(xp, a3, part):
            r = body(block)
            if r is not None:
                total = r if total is None else tuple(t + u for t, u in zip(total, r))
        return total
    partials = _parallel.map_parts(part_work, _parallel.parts(xp, a3.shape[0], a3.nbytes))
    if partials[0] is None:
        return None
    return tuple(_parallel.add_in_order([p[k] for p in partials]) for k in range(len(partials[0])))


class BatchNorm(Function):
    """y = γ x̂ + β with x̂ = (x − μ)·σ⁻¹, from batch (train) or running (eval) statistics.

    Stores d = x − K and σ⁻¹ (not x̂), K the shift of the statistics (train) or the
    running mean (eval, δ = 0). Forward is two sweeps over the rows: d with Σd and Σd²
    while a block is in cache, then y = d·(γσ⁻¹) + (β − δγσ⁻¹). On the CPU each worker
    (:mod:`._parallel`) takes a part of the rows in cache-sized blocks, and the channel
    sums of the parts are added in part order; on CuPy it is whole-array operations.
    """

    def forward(self, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        op = "batch_norm"
        check_same_dtype(op, x, *(a for a in (weight, bias) if a is not None))
        channels = {tuple(a.shape) for a in (weight, bias, running_mean, running_var) if a is not None}
        if len(channels) > 1 or any(len(s) != 1 for s in channels):
            raise ValueError(f"{op}: weight, bias, running_mean and running_var must all have shape (C,), "
                             f"got shapes {sorted(channels)}")
        _check_input(op, x, next(iter(channels))[0] if channels else None)
        layout = _Layout(x)
        x3 = layout.to3(x)
        count = x.size // x.shape[1]
        batch_stats = training or running_mean is None
        if batch_stats:
            if count < 2:
                raise ValueError(f"{op}: training needs more than one value per channel, got input of "
                                 f"shape {tuple(x.shape)} (use a larger batch, or eval mode)")
            shift = x3[:SHIFT_ROWS].mean(axis=(0, 2))
        else:
            shift = running_mean.astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
        xp = _xp(x)
        centred = xp.empty(x3.shape, dtype=x.dtype)

        def centre(r):   # d = x − K, and Σd, Σd² while the block is in cache
            xp.subtract(x3[r], _bcast(shift), out=centred[r])
            return (_channel_sums(centred[r]), _channel_dots(centred[r], centred[r])) if batch_stats else None

        sums = _per_block(x3, centre)
        if batch_stats:
            offset = sums[0] / count   # δ = μ − K
            mean = shift + offset
            # ≥ 0: for a constant channel rounding can leave Σd²/M − δ² a hair below zero
            var = xp.maximum(sums[1] / count - offset * offset, 0)
        else:
            offset = None   # d = x − running_mean: δ = 0
        inv_std = 1.0 / xp.sqrt(var + eps)
        if training and running_mean is not None:   # in place: the module's buffers
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
            running_var *= 1.0 - momentum
            running_var += (momentum * count / (count - 1)) * var
        scale = inv_std if weight is None else weight * inv_std
        out_shift = bias if offset is None else -offset * scale if bias is None else bias - offset * scale
        self.centred, self.offset, self.inv_std, self.scale = centred, offset, inv_std, scale
        self.layout, self.count, self.batch_stats = layout, count, batch_stats
        out = xp.empty(x3.shape, dtype=x.dtype)

        def affine(r):
            xp.multiply(centred[r], _bcast(scale), out=out[r])
            if out_shift is not None:
                out[r] += _bcast(out_shift)

        _per_block(x3, affine)
        return layout.from3(out)

    def backward(self, g):
        g3, centred, m, xp = self.layout.to3(g), self.centred, self.count, _xp(g)
        g_sum, gd_sum = _per_block(g3, lambda r: (_channel_sums(g3[r]), _channel_dots(g3[r], centred[r])))
        if self.offset is not None:
            gd_sum = gd_sum - self.offset * g_sum   # Σ g (x − μ) = Σ g d − δ Σ g
        gx_sum = gd_sum * self.inv_std   # Σ g x̂
        gx = xp.empty(g3.shape, dtype=g.dtype)
        a, scale = -self.inv_std * gx_sum / m, _bcast(self.scale)
        # γσ⁻¹ (g − Σg/M − x̂ Σ(g x̂)/M) = γσ⁻¹ (g + d·a − c) with a = −σ⁻¹Σ(g x̂)/M, c = Σg/M + δ·a
        c = _bcast(g_sum / m if self.offset is None else g_sum / m + self.offset * a)
        a = _bcast(a)

        def combine(r):   # on a block in cache; eval: γσ⁻¹ g
            if self.batch_stats:
                xp.multiply(centred[r], a, out=gx[r])
                gx[r] += g3[r]
                gx[r] -= c
                gx[r] *= scale
            else:
                xp.multiply(g3[r], scale, out=gx[r])

        _per_block(g3, combine)
        grads = (self.layout.from3(gx),)
        if len(self.parents) > 1:
            grads += (gx_sum, g_sum)
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
