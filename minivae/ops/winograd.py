"""Winograd F(m×m, 2×2) convolutions for 4×4 kernels with stride 2 (the big layers of the
conv presets): the ops. The maths -- space to depth, the Toom-Cook matrices, the tile
transforms and their adjoints -- is :mod:`.winograd_math`; its docstring has the equations.

A 4×4 stride-2 convolution is a 2×2 stride-1 convolution of the space-to-depth image; with
m = :data:`~.winograd_math.TILE` = 4 the GEMM work is (m+1)²/(4m²) = 0.39 of im2col's
(Lavin & Gray 2016, §4). Every stage is linear and the vjp runs each stage's adjoint in
reverse order:

    forward  x → u → D = Bᵀ d B → M = D · Gw → y = Aᵀ M A          (Gw = G V Gᵀ)
    vjp      dM = A dy Aᵀ,  dGw = Dᵀ dM,  dD = dM Gwᵀ,  du = B dD Bᵀ (overlapping tiles
             added),  dV = Gᵀ dGw G

so the gradients are exactly those of the function computed (adjoint tests check
it), and a transposed convolution -- the adjoint of a convolution in its input -- is
the vjp chain run forward: x → A x Aᵀ → · Gwᵀ → B · Bᵀ → depth to space. Sizes that
are not multiples of m get a last tile of zero input, cropped afterwards.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp
from . import _parallel
from ._checks import check_conv_args
from .winograd_math import (TILE, input_transform, input_transform_adjoint, output_transform,
                            output_transform_adjoint, space_to_depth, weight_transform,
                            weight_transform_adjoint)


def applies(kernel, stride, padding, in_size, output_padding=(0, 0)) -> bool:
    """Whether a (transposed) convolution has the geometry this module computes:
    4×4 kernel, stride 2, an even padded size (``in_size`` is conv2d's input size or
    conv_transpose2d's output size), no output padding."""
    return (tuple(kernel) == (4, 4) and tuple(stride) == (2, 2) and tuple(output_padding) == (0, 0)
            and all((s + 2 * p) % 2 == 0 for s, p in zip(in_size, padding)))


def tiles(out_size, m=None) -> tuple[int, int]:
    """Number of m×m output tiles along height and width (rounded up)."""
    m = m or TILE
    return tuple(-(-s // m) for s in out_size)


def used_fraction(in_size, padding) -> float:
    """The fraction of the tiles' outputs that the result keeps: the tiles cover the output
    of the 2×2 convolution on the space-to-depth image, (s + 2p)/2 − 1 per side (``in_size``
    as in :func:`applies`), rounded up to whole m×m tiles (7×7 → 8×8 keeps 49/64)."""
    out = [(s + 2 * p) // 2 - 1 for s, p in zip(in_size, padding)]
    covered = [TILE * t for t in tiles(out)]
    return (out[0] * out[1]) / (covered[0] * covered[1])


def channel_sums(a):
    """Σ over (N, H, W) of an NCHW-shaped array: one GEMV when channels-last (several
    times faster than sum), else NumPy's sum (no transposing copy)."""
    xp = _xp(a)
    last = a.transpose(0, 2, 3, 1)
    if last.flags.c_contiguous:
        return xp.ones(a.size // a.shape[1], dtype=a.dtype) @ last.reshape(-1, a.shape[1])
    return a.sum(axis=(0, 2, 3))


def _tiled(a_last, tiles_hw):
    """A channels-last (n, h, w, C) image as (n, m·Ta, m·Tb, C): itself when the sizes are
    multiples of the tile, else a zero-padded copy (the last tiles' missing rows/columns)."""
    xp = _xp(a_last)
    n, h, w, c = a_last.shape
    ta, tb = tiles_hw
    if (h, w) == (TILE * ta, TILE * tb):
        return a_last
    out = xp.zeros((n, TILE * ta, TILE * tb, c), dtype=a_last.dtype)
    out[:, :h, :w] = a_last
    return out


def _unpadded(du, size, padding):
    """The (n, H, W, C) interior of a space-to-depth gradient (n, P, 2, Q, 2, C) (a view)."""
    n, p, _, q, _, c = du.shape
    (h, w), (ph, pw) = size, padding
    return du.reshape(n, 2 * p, 2 * q, c)[:, ph:ph + h, pw:pw + w]


# "auto" picks Winograd only when the smaller channel count, times the fraction of the
# tiles' outputs that are kept (:func:`used_fraction`), reaches this: with fewer, a layer
# is bound by memory traffic, not GEMMs, and the transforms cost more than they save.
# Measured (fwd + vjp, batch 128, both algorithms alternated in one process for 5
# rounds): 32→32 and 32→64 channels with 8×8 outputs 27 % and 20 % faster by Winograd;
# mnist-conv's 32→64 and 64→32 with 7×7 (tiles keep 49/64, so 24.5 < 32) 4-20 % slower;
# 64→128 with 7×7 (49 ≥ 32) 19 % faster. The presets' layers: benchmarks/bench_conv.py
# --algorithm im2col|winograd; a whole step: benchmarks/bench_ab.py.
MIN_AUTO_CHANNELS = 32

# Target size of one batch chunk's D and M on the CPU. Measured on cifar-conv: 256 KiB-1 MiB
# chunks (cache-sized) were slower -- the per-chunk GEMMs get too short -- and 4-64 MiB alike.
CPU_CHUNK_BYTES = 8 << 20

# Keep the transformed input tiles D for the vjp (else recompute them per chunk).
KEEP_TILES = True


def _weight_and_bias_grads(partials, channels, with_bias):
    """(dW,) or (dW, db) from the parts' partial (dGw, db), added in part order; dW = Gᵀ dGw G."""
    gw = weight_transform_adjoint(_parallel.add_in_order([p[0] for p in partials]), channels)
    return (gw, _parallel.add_in_order([p[1] for p in partials])) if with_bias else (gw,)


def _image_tiles(img_last, padding, tiles_hw):
    """D = Bᵀ u B: the transformed input tiles of a channels-last image (conv2d's input,
    conv_transpose2d's output gradient)."""
    return input_transform(space_to_depth(img_last, padding, tiles_hw))


def _image_from_tiles(d, gw, n, size, tiles_hw, bias=None):
    """crop(Aᵀ (D Gw) A) + b: the (n, H, W, O) channels-last image of tiles D (a view)."""
    y = output_transform(_xp(d).matmul(d, gw), n, tiles_hw, bias)
    return y[:, :size[0], :size[1]]


def _gradient_tiles(img_last, tiles_hw):
    """dM = A x Aᵀ: the output-transform adjoint of a channels-last image (conv2d's output
    gradient, conv_transpose2d's input)."""
    return output_transform_adjoint(_tiled(img_last, tiles_hw), tiles_hw)


def _image_from_gradient_tiles(dm, gw, n, size, padding, tiles_hw, channels, dtype):
    """crop(B (dM Gwᵀ) Bᵀ): the (n, H, W, C) channels-last image of gradient tiles dM (a view)."""
    u_shape = (n, TILE * tiles_hw[0] + 1, 2, TILE * tiles_hw[1] + 1, 2, channels)
    return _unpadded(input_transform_adjoint(_xp(dm).matmul(dm, gw.transpose(0, 2, 1)), u_shape, dtype),
                     size, padding)


def _weight_tiles_grad(dm, d):
    """dGw = Dᵀ dM per tile position, as a (4C, O) view of each."""
    return _xp(d).matmul(dm.transpose(0, 2, 1), d).transpose(0, 2, 1)


def _plan(xp, n, tiles_hw, channels, outputs, itemsize):
    """Parts of the batch (one per CPU worker), each in chunks whose D and M together are
    about :data:`CPU_CHUNK_BYTES` (bounding the temporaries of a large batch)."""
    per_image = (TILE + 1) ** 2 * tiles_hw[0] * tiles_hw[1] * (4 * channels + outputs) * itemsize
    return _parallel.plan(xp, n, per_image, CPU_CHUNK_BYTES)


class WinogradConv2d(Function):
    """conv2d with a 4×4 kernel and stride 2 by F(m×m, 2×2) on the space-to-depth image
    (module docstring). Per batch part (:mod:`._parallel`):

    forward:  D = Bᵀ u B,  M = D Gw,  y = Aᵀ M A + b
    vjp:      dM = A G Aᵀ,  dGw = Dᵀ dM,  dD = dM Gwᵀ,  dx = crop(B dD Bᵀ),
              dW = Gᵀ dGw G (in W's layout),  db = Σ G
    """

    def forward(self, x, weight, bias=None, padding=(1, 1)):
        check_conv_args("conv2d", x, weight, bias, in_axis=1, out_axis=0)
        xp = _xp(x)
        n, c, h, w = x.shape
        o = weight.shape[0]
        out_size = ((h + 2 * padding[0]) // 2 - 1, (w + 2 * padding[1]) // 2 - 1)
        tiles_hw = tiles(out_size)
        gw = weight_transform(weight)
        out = xp.empty((n,) + out_size + (o,), dtype=x.dtype)   # channels-last
        x_last = x.transpose(0, 2, 3, 1)

        def work(chunks):
            kept = []
            for chunk in chunks:
                d = _image_tiles(x_last[chunk], padding, tiles_hw)
                out[chunk] = _image_from_tiles(d, gw, chunk.stop - chunk.start, out_size, tiles_hw, bias)
                kept.append(d if KEEP_TILES else None)
            return kept

        self.plan = _plan(xp, n, tiles_hw, c, o, x.itemsize)
        self.x_last = x_last
        self.saved = _parallel.map_parts(work, self.plan)
        self.gw, self.geometry = gw, (n, h, w, c, padding, out_size, tiles_hw)
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        n, h, w, c, padding, out_size, tiles_hw = self.geometry
        xp, gw, with_bias = _xp(g), self.gw, len(self.parents) == 3
        need_gx = self.parents[0].requires_grad
        gx = xp.empty((n, h, w, c), dtype=g.dtype) if need_gx else None   # channels-last
        g_last = g.transpose(0, 2, 3, 1)

        def work(k):
            dgw = gb = None
            for chunk, d in zip(self.plan[k], self.saved[k]):
                if d is None:
                    d = _image_tiles(self.x_last[chunk], padding, tiles_hw)
                dm = _gradient_tiles(g_last[chunk], tiles_hw)
                dgw = _parallel.accumulate(dgw, _weight_tiles_grad(dm, d))
                if need_gx:
                    gx[chunk] = _image_from_gradient_tiles(dm, gw, chunk.stop - chunk.start, (h, w), padding,
                                                           tiles_hw, c, g.dtype)
                gb = _parallel.accumulate(gb, channel_sums(g[chunk])) if with_bias else None
            return dgw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        return (gx.transpose(0, 3, 1, 2) if need_gx else None,) + _weight_and_bias_grads(partials, c, with_bias)


class WinogradConvTranspose2d(Function):
    """conv_transpose2d with a 4×4 kernel and stride 2: the vjp chain of
    :class:`WinogradConv2d` run forward (weight (C_in, C_out, 4, 4) read as the conv2d
    weight it is the transpose of). Per batch part:

    forward:  dM = A x Aᵀ,  E = dM Gwᵀ,  y = crop(B E Bᵀ) + b
    vjp:      D = Bᵀ u(G) B,  dx = Aᵀ (D Gw) A,  dGw = Dᵀ dM,  dW = Gᵀ dGw G,  db = Σ G
    """

    def forward(self, x, weight, bias=None, padding=(1, 1)):
        check_conv_args("conv_transpose2d", x, weight, bias, in_axis=0, out_axis=1)
        xp = _xp(x)
        n, cin, h, w = x.shape
        cout = weight.shape[1]
        out_size = (2 * h + 2 - 2 * padding[0], 2 * w + 2 - 2 * padding[1])
        tiles_hw = tiles((h, w))
        gw = weight_transform(weight)                      # ((m+1)², 4·C_out, C_in)
        out = xp.empty((n,) + out_size + (cout,), dtype=x.dtype)   # channels-last
        x_last = x.transpose(0, 2, 3, 1)

        def work(chunks):
            kept = []
            for chunk in chunks:
                dm = _gradient_tiles(x_last[chunk], tiles_hw)
                y = _image_from_gradient_tiles(dm, gw, chunk.stop - chunk.start, out_size, padding,
                                               tiles_hw, cout, x.dtype)
                if bias is None:
                    out[chunk] = y
                else:
                    xp.add(y, bias, out=out[chunk])
                kept.append(dm if KEEP_TILES else None)
            return kept

        self.plan = _plan(xp, n, tiles_hw, cout, cin, x.itemsize)
        self.x_last = x_last
        self.saved = _parallel.map_parts(work, self.plan)
        self.gw, self.geometry = gw, (n, h, w, cin, cout, padding, tiles_hw)
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        n, h, w, cin, cout, padding, tiles_hw = self.geometry
        xp, gw, with_bias = _xp(g), self.gw, len(self.parents) == 3
        need_gx = self.parents[0].requires_grad
        gx = xp.empty((n, h, w, cin), dtype=g.dtype) if need_gx else None
        g_last = g.transpose(0, 2, 3, 1)

        def work(k):
            dgw = gb = None
            for chunk, dm in zip(self.plan[k], self.saved[k]):
                if dm is None:
                    dm = _gradient_tiles(self.x_last[chunk], tiles_hw)
                d = _image_tiles(g_last[chunk], padding, tiles_hw)
                if need_gx:
                    gx[chunk] = _image_from_tiles(d, gw, chunk.stop - chunk.start, (h, w), tiles_hw)
                dgw = _parallel.accumulate(dgw, _weight_tiles_grad(dm, d))
                gb = _parallel.accumulate(gb, channel_sums(g[chunk])) if with_bias else None
            return dgw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        return (gx.transpose(0, 3, 1, 2) if need_gx else None,) + _weight_and_bias_grads(partials, cout, with_bias)
