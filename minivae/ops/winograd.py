"""Winograd F(2×2, 2×2) for 4×4 convolutions with stride 2 (every layer of the conv presets).

Space to depth. With x̃ the zero-padded input, a 4×4 stride-2 convolution is a 2×2
stride-1 convolution of the space-to-depth image u with 4C channels:

    u[n, p, q, (r, r', c)] = x̃[n, c, 2p + r, 2q + r'],   V[t, t', (r, r', c), o] = W[o, c, 2t + r, 2t' + r']
    y[n, o, a, b] = Σ_{t, t' ∈ {0, 1}} Σ_k u[n, a + t, b + t', k] · V[t, t', k, o]

Winograd's minimal filtering F(2, 2) (Lavin & Gray 2016, "Fast algorithms for
convolutional neural networks", §4 and eq. 8) computes each 2×2 output tile of that
convolution from a 3×3 tile of u with 9 products instead of 16:

    Y = Aᵀ [ (G V Gᵀ) ⊙ (Bᵀ d B) ] A,
    Bᵀ = [[1, −1, 0], [0, 1, 0], [0, −1, 1]],   G = [[1, 0], [1, 1], [0, 1]],   Aᵀ = [[1, 1, 0], [0, 1, 1]].

Summed over channels, each of the 9 elementwise products is a GEMM,
(tiles, 4C) @ (4C, O): 9·4C·O multiply-adds per tile against im2col's 4·16C·O,
0.5625× the GEMM work; the transforms are additions (coefficients ±1, so the
rounding is that of a few float additions). Odd output sizes get one tile row or
column of zero input, cropped afterwards.

Every stage is linear, and the vjp runs each stage's adjoint in reverse order:

    forward  x → u → D = Bᵀ u B → M = D · Gw → y = Aᵀ M A          (Gw = G V Gᵀ)
    vjp      dM = A dy Aᵀ,  dGw = Dᵀ dM,  dD = dM Gwᵀ,  du = B dD Bᵀ,  dV = Gᵀ dGw G

so the gradients are exactly those of the function computed (adjoint tests check
it), and a transposed convolution -- the adjoint of a convolution in its input -- is
the vjp chain run forward: x → A x Aᵀ → · Gwᵀ → B · Bᵀ → depth to space.

The one-dimensional transforms along an axis are the helpers below; ``_spread`` is
both G and the adjoint of Aᵀ, ``_fold`` both Aᵀ and the adjoint of G.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp
from . import _parallel
from ._checks import check_conv_args


def applies(kernel, stride, padding, in_size, output_padding=(0, 0)) -> bool:
    """Whether a (transposed) convolution has the geometry this module computes:
    4×4 kernel, stride 2, an even padded size (``in_size`` is conv2d's input size or
    conv_transpose2d's output size), no output padding."""
    return (tuple(kernel) == (4, 4) and tuple(stride) == (2, 2) and tuple(output_padding) == (0, 0)
            and all((s + 2 * p) % 2 == 0 for s, p in zip(in_size, padding)))


def tiles(out_size) -> tuple[int, int]:
    """Number of 2×2 output tiles along height and width (odd sizes rounded up)."""
    return tuple(-(-s // 2) for s in out_size)


def _along(axis, index):
    return (slice(None),) * axis + (index,)


def _difference(u, out, axis):
    """Bᵀ along ``axis`` (length 2T+1 → 3 × T, written into out[0..2]):
    d0 = u[2α] − u[2α+1],  d1 = u[2α+1],  d2 = u[2α+2] − u[2α+1]."""
    xp = _xp(u)
    t = out[0].shape[axis]
    odd = u[_along(axis, slice(1, 2 * t, 2))]
    xp.subtract(u[_along(axis, slice(0, 2 * t, 2))], odd, out=out[0])
    out[1][...] = odd
    xp.subtract(u[_along(axis, slice(2, 2 * t + 1, 2))], odd, out=out[2])


def _difference_adjoint(d, out, axis):
    """B along ``axis``, the adjoint of :func:`_difference` (3 × T → 2T+1, written into out):
    out[2α] = d0[α] + d2[α−1],  out[2α+1] = d1[α] − d0[α] − d2[α]."""
    xp = _xp(out)
    t = d[0].shape[axis]
    even, odd = out[_along(axis, slice(0, None, 2))], out[_along(axis, slice(1, None, 2))]
    xp.subtract(d[1], d[0], out=odd)
    odd -= d[2]
    even[_along(axis, slice(0, t))] = d[0]
    even[_along(axis, t)] = 0
    even[_along(axis, slice(1, None))] += d[2]


def _spread(y, out, axis):
    """G along ``axis`` (length 2T → 3 × T, into out[0..2]): m0 = y[2α], m1 = y[2α] + y[2α+1],
    m2 = y[2α+1]. On weights (T = 1) this is G V; on output gradients, the adjoint of Aᵀ."""
    xp = _xp(y)
    first, second = y[_along(axis, slice(0, None, 2))], y[_along(axis, slice(1, None, 2))]
    out[0][...] = first
    xp.add(first, second, out=out[1])
    out[2][...] = second


def _fold(m, out, axis):
    """Aᵀ along ``axis`` (3 × T → 2T, into out): y[2α] = m0 + m1, y[2α+1] = m1 + m2.
    On the products this is the output transform; on weight gradients, the adjoint of G."""
    xp = _xp(out)
    xp.add(m[0], m[1], out=out[_along(axis, slice(0, None, 2))])
    xp.add(m[1], m[2], out=out[_along(axis, slice(1, None, 2))])


def weight_transform(weight):
    """Gw = G V Gᵀ as (9, 4C, O) from a conv2d weight (O, C, 4, 4) (or a transposed
    convolution's (C_in, C_out, 4, 4), read as the conv2d it is the adjoint of)."""
    xp = _xp(weight)
    o, c = weight.shape[:2]
    v = weight.reshape(o, c, 2, 2, 2, 2).transpose(2, 4, 3, 5, 1, 0).reshape(2, 2, 4 * c, o)   # (t, t', k, o)
    g = xp.stack([v[0], v[0] + v[1], v[1]])                                  # G along t
    g = xp.stack([g[:, 0], g[:, 0] + g[:, 1], g[:, 1]], axis=1)              # and along t'
    return g.reshape(9, 4 * c, o)


def weight_transform_adjoint(dgw, c):
    """dW (O, C, 4, 4) from dGw (9, 4C, O): dV = Gᵀ dGw G, then V's layout back to W's."""
    xp = _xp(dgw)
    o = dgw.shape[2]
    dg = dgw.reshape(3, 3, 4 * c, o)
    h = xp.stack([dg[:, 0] + dg[:, 1], dg[:, 1] + dg[:, 2]], axis=1)        # Gᵀ along t'
    dv = xp.stack([h[0] + h[1], h[1] + h[2]])                                # and along t
    return xp.ascontiguousarray(dv.reshape(2, 2, 2, 2, c, o).transpose(5, 4, 0, 2, 1, 3)).reshape(o, c, 4, 4)


def space_to_depth(x_last, padding, tiles_hw):
    """u of a channels-last image (n, H, W, C) as the (n, 2Ta+1, 2, 2Tb+1, 2, C) view of one
    zero-padded copy: u[n, p, r, q, r', c] = x̃[n, 2p + r, 2q + r', c]."""
    xp = _xp(x_last)
    n, h, w, c = x_last.shape
    (ph, pw), (ta, tb) = padding, tiles_hw
    buf = xp.empty((n, 4 * ta + 2, 4 * tb + 2, c), dtype=x_last.dtype)
    buf[:, :ph], buf[:, ph + h:] = 0, 0     # zero only the border strips
    buf[:, :, :pw], buf[:, :, pw + w:] = 0, 0
    buf[:, ph:ph + h, pw:pw + w] = x_last
    return buf.reshape(n, 2 * ta + 1, 2, 2 * tb + 1, 2, c)


def input_transform(u):
    """D = Bᵀ d B for every 3×3 tile of u: (9, n·Ta·Tb, 4C), rows (n, α, β), columns (r, r', c)."""
    xp = _xp(u)
    n, p, _, q, _, c = u.shape
    ta, tb = (p - 1) // 2, (q - 1) // 2
    rows = xp.empty((3, n, ta, 2, q, 2, c), dtype=u.dtype)
    _difference(u, rows, axis=1)
    d = xp.empty((3, 3, n, ta, tb, 2, 2, c), dtype=u.dtype)
    for xi in range(3):
        _difference(rows[xi], d[xi].transpose(0, 1, 2, 4, 3, 5, 6), axis=3)
    return d.reshape(9, n * ta * tb, 4 * c)


def input_transform_adjoint(dd, u_shape, dtype):
    """du = B dD Bᵀ: the (n, 2Ta+1, 2, 2Tb+1, 2, C) gradient of u (a fresh array) from dD (9, n·Ta·Tb, 4C)."""
    xp = _xp(dd)
    n, p, _, q, _, c = u_shape
    ta, tb = (p - 1) // 2, (q - 1) // 2
    dd = dd.reshape(3, 3, n, ta, tb, 2, 2, c)
    rows = xp.empty((3, n, ta, 2, q, 2, c), dtype=dtype)
    for xi in range(3):
        _difference_adjoint(dd[xi].transpose(0, 1, 2, 4, 3, 5, 6), rows[xi], axis=3)
    du = xp.empty(u_shape, dtype=dtype)
    _difference_adjoint(rows, du, axis=1)
    return du


def output_transform(m, n, tiles_hw, bias=None):
    """y = Aᵀ M A (+ bias): the channels-last (n, 2Ta, 2Tb, O) image from the products M (9, n·Ta·Tb, O)."""
    xp = _xp(m)
    (ta, tb), o = tiles_hw, m.shape[-1]
    m = m.reshape(3, 3, n, ta, tb, o)
    cols = xp.empty((3, n, ta, 2 * tb, o), dtype=m.dtype)
    for xi in range(3):
        _fold(m[xi], cols[xi], axis=2)
    if bias is not None:
        cols[1] += bias   # rows 2α and 2α+1 both take cols[1] once: the bias lands once per pixel
    y = xp.empty((n, 2 * ta, 2 * tb, o), dtype=m.dtype)
    _fold(cols, y, axis=1)
    return y


def output_transform_adjoint(dy, tiles_hw):
    """dM = A dY Aᵀ (9, n·Ta·Tb, O) from a channels-last (n, 2Ta, 2Tb, O) image gradient (any strides)."""
    xp = _xp(dy)
    n, o = dy.shape[0], dy.shape[-1]
    ta, tb = tiles_hw
    rows = xp.empty((3, n, ta, 2 * tb, o), dtype=dy.dtype)
    _spread(dy, rows, axis=1)
    dm = xp.empty((3, 3, n, ta, tb, o), dtype=dy.dtype)
    for xi in range(3):
        _spread(rows[xi], dm[xi], axis=2)
    return dm.reshape(9, n * ta * tb, o)


def _accumulate(total, product):
    """``total + product`` reusing ``total``'s memory (``product`` when total is None)."""
    if total is None:
        return product
    total += product
    return total


def channel_sums(a):
    """Σ over (N, H, W) of an NCHW-shaped array: one GEMV when channels-last (several
    times faster than sum), else NumPy's sum (no transposing copy)."""
    xp = _xp(a)
    last = a.transpose(0, 2, 3, 1)
    if last.flags.c_contiguous:
        return xp.ones(a.size // a.shape[1], dtype=a.dtype) @ last.reshape(-1, a.shape[1])
    return a.sum(axis=(0, 2, 3))


def _tiled(a_last, tiles_hw):
    """A channels-last (n, h, w, C) image as (n, 2Ta, 2Tb, C): itself when the sizes are
    even, else a zero-padded copy (the extra tile row/column of an odd size)."""
    xp = _xp(a_last)
    n, h, w, c = a_last.shape
    ta, tb = tiles_hw
    if (h, w) == (2 * ta, 2 * tb):
        return a_last
    out = xp.zeros((n, 2 * ta, 2 * tb, c), dtype=a_last.dtype)
    out[:, :h, :w] = a_last
    return out


def _unpadded(du, size, padding):
    """The (n, H, W, C) interior of a space-to-depth gradient (n, P, 2, Q, 2, C) (a view)."""
    n, p, _, q, _, c = du.shape
    (h, w), (ph, pw) = size, padding
    return du.reshape(n, 2 * p, 2 * q, c)[:, ph:ph + h, pw:pw + w]


# "auto" picks Winograd only when both channel counts reach this: with fewer, a layer is
# bound by memory traffic, not GEMMs, and the transforms cost more than they save
# (benchmarks/bench_conv.py --algorithm).
MIN_AUTO_CHANNELS = 64

# Target size of one batch chunk's transformed tiles on the CPU (about an L2 cache).
CPU_CHUNK_BYTES = 8 << 20

# Keep the transformed input tiles D for the vjp (else recompute them per chunk).
KEEP_TILES = True


def _plan(xp, n, tiles_hw, channels, outputs, itemsize):
    """Parts of the batch (one per CPU worker), each in chunks whose D and M together are
    about :data:`CPU_CHUNK_BYTES` (the transforms then read what the GEMM just wrote
    from cache)."""
    per_image = 9 * tiles_hw[0] * tiles_hw[1] * (4 * channels + outputs) * itemsize
    return _parallel.plan(xp, n, per_image, CPU_CHUNK_BYTES)


class WinogradConv2d(Function):
    """conv2d with a 4×4 kernel and stride 2 by F(2×2, 2×2) on the space-to-depth image
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
                d = input_transform(space_to_depth(x_last[chunk], padding, tiles_hw))
                y = output_transform(xp.matmul(d, gw), chunk.stop - chunk.start, tiles_hw, bias)
                out[chunk] = y[:, :out_size[0], :out_size[1]]
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
                u = space_to_depth(self.x_last[chunk], padding, tiles_hw) if d is None or need_gx else None
                d = input_transform(u) if d is None else d
                dm = output_transform_adjoint(_tiled(g_last[chunk], tiles_hw), tiles_hw)
                dgw = _accumulate(dgw, xp.matmul(d.transpose(0, 2, 1), dm))
                if need_gx:
                    du = input_transform_adjoint(xp.matmul(dm, gw.transpose(0, 2, 1)), u.shape, g.dtype)
                    gx[chunk] = _unpadded(du, (h, w), padding)
                gb = _accumulate(gb, channel_sums(g[chunk])) if with_bias else None
            return dgw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        gw_grad = weight_transform_adjoint(_parallel.add_in_order([p[0] for p in partials]), c)
        grads = (gx.transpose(0, 3, 1, 2) if need_gx else None, gw_grad)
        return grads + (_parallel.add_in_order([p[1] for p in partials]),) if with_bias else grads


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
        gw = weight_transform(weight)                      # (9, 4·C_out, C_in)
        out = xp.empty((n,) + out_size + (cout,), dtype=x.dtype)   # channels-last
        x_last = x.transpose(0, 2, 3, 1)
        u_tail = (2 * tiles_hw[0] + 1, 2, 2 * tiles_hw[1] + 1, 2, cout)

        def work(chunks):
            kept = []
            for chunk in chunks:
                dm = output_transform_adjoint(_tiled(x_last[chunk], tiles_hw), tiles_hw)
                du = input_transform_adjoint(xp.matmul(dm, gw.transpose(0, 2, 1)),
                                             (chunk.stop - chunk.start,) + u_tail, x.dtype)
                y = _unpadded(du, out_size, padding)
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
                    dm = output_transform_adjoint(_tiled(self.x_last[chunk], tiles_hw), tiles_hw)
                d = input_transform(space_to_depth(g_last[chunk], padding, tiles_hw))
                if need_gx:
                    y = output_transform(xp.matmul(d, gw), chunk.stop - chunk.start, tiles_hw)
                    gx[chunk] = y[:, :h, :w]
                dgw = _accumulate(dgw, xp.matmul(d.transpose(0, 2, 1), dm))
                gb = _accumulate(gb, channel_sums(g[chunk])) if with_bias else None
            return dgw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        gw_grad = weight_transform_adjoint(_parallel.add_in_order([p[0] for p in partials]), cout)
        grads = (gx.transpose(0, 3, 1, 2) if need_gx else None, gw_grad)
        return grads + (_parallel.add_in_order([p[1] for p in partials]),) if with_bias else grads
