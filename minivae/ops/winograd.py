"""Winograd F(m×m, 2×2) for 4×4 convolutions with stride 2 (the big layers of the conv presets).

Space to depth. With x̃ the zero-padded input, a 4×4 stride-2 convolution is a 2×2
stride-1 convolution of the space-to-depth image u with 4C channels:

    u[n, p, q, (r, r', c)] = x̃[n, c, 2p + r, 2q + r'],   V[t, t', (r, r', c), o] = W[o, c, 2t + r, 2t' + r']
    y[n, o, a, b] = Σ_{t, t' ∈ {0, 1}} Σ_k u[n, a + t, b + t', k] · V[t, t', k, o]

Winograd's minimal filtering F(m, 2) (Lavin & Gray 2016, "Fast algorithms for
convolutional neural networks", §4, eq. 8) computes each m×m output tile of that
2×2 convolution from an (m+1)×(m+1) tile d of u with (m+1)² products instead of 4m²:

    Y = Aᵀ [ (G V Gᵀ) ⊙ (Bᵀ d B) ] A

with Aᵀ (m × (m+1)), G ((m+1) × 2), Bᵀ ((m+1) × (m+1)) from the Toom-Cook construction
at the points of :data:`POINTS` (:func:`toom_cook`). Summed over channels each of the
(m+1)² products is a GEMM, (tiles, 4C) @ (4C, O): the GEMM work is (m+1)²/(4m²) of
im2col's -- 0.5625 for m = 2, 0.39 for m = 4 (the default, :data:`TILE`). F(2, 2)
has the coefficients ±1 of Bᵀ = [[1, −1, 0], [0, 1, 0], [0, −1, 1]]; F(4, 2) at
0, 1, −1, 2 and ∞ has integers up to 8 in Aᵀ and fractions down to 1/6 in G, which
costs about one decimal digit in float32 (measured in tests/test_winograd.py).

Each 2-D transform is one GEMM with a Kronecker product, vec(Bᵀ d B) = (Bᵀ ⊗ Bᵀ) vec(d),
applied to every tile at once (the tiles gathered by one strided copy). Every stage
is linear and the vjp runs each stage's adjoint in reverse order:

    forward  x → u → D = Bᵀ d B → M = D · Gw → y = Aᵀ M A          (Gw = G V Gᵀ)
    vjp      dM = A dy Aᵀ,  dGw = Dᵀ dM,  dD = dM Gwᵀ,  du = B dD Bᵀ (overlapping tiles
             added),  dV = Gᵀ dGw G

so the gradients are exactly those of the function computed (adjoint tests check
it), and a transposed convolution -- the adjoint of a convolution in its input -- is
the vjp chain run forward: x → A x Aᵀ → · Gwᵀ → B · Bᵀ → depth to space. Sizes that
are not multiples of m get a last tile of zero input, cropped afterwards.
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..autograd import Function
from ..backend import get_array_module as _xp
from . import _parallel
from ._checks import check_conv_args

# Output tile side m, and the finite interpolation points of F(m, 2) (∞ is the last).
TILE = 4
POINTS = {2: (0, 1), 4: (0, 1, -1, 2)}


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


def toom_cook(m, points):
    """Exact (Fraction) matrices (Aᵀ, G, Bᵀ) of F(m, 2) for the correlation
    y_i = Σ_k d_{i+k} g_k, from evaluation at ``points`` and ∞ (Lavin & Gray 2016, §4;
    Toom-Cook): with V_k the (m+1) × k matrix of rows (1, a, …, a^{k−1}) and ∞'s row
    (0, …, 0, 1),  Aᵀ = V_mᵀ,  G = V_2,  Bᵀ = V_{m+1}⁻ᵀ, whose rows are then scaled to
    integers and G's rows by the inverse (the product is unchanged)."""
    n = m + 1
    nodes = [Fraction(a) for a in points] + [None]
    if len(nodes) != n:
        raise ValueError(f"F({m}, 2) needs {m} finite points, got {points}")

    def vander(k):
        return [[Fraction(int(j == k - 1)) for j in range(k)] if a is None else [a ** j for j in range(k)]
                for a in nodes]
    vn = vander(n)
    inverse = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(vn)]
    for col in range(n):   # Gauss-Jordan on [V | I]
        pivot = next(i for i in range(col, n) if inverse[i][col] != 0)
        inverse[col], inverse[pivot] = inverse[pivot], inverse[col]
        inverse[col] = [v / inverse[col][col] for v in inverse[col]]
        for i in range(n):
            if i != col and inverse[i][col] != 0:
                inverse[i] = [v - inverse[i][col] * w for v, w in zip(inverse[i], inverse[col])]
    bt = [[inverse[j][n + i] for j in range(n)] for i in range(n)]
    g = vander(2)
    for i, row in enumerate(bt):
        scale = math.lcm(*(v.denominator for v in row))
        bt[i] = [v * scale for v in row]
        g[i] = [v / scale for v in g[i]]
    at = [[row[i] for row in vander(m)] for i in range(m)]
    return at, g, bt


_KRON = {}


def kron_matrices(xp, dtype, m=None):
    """(Bᵀ ⊗ Bᵀ, G ⊗ G, Aᵀ ⊗ Aᵀ) of F(m, 2) as ``xp`` arrays: ((m+1)² × (m+1)²,
    (m+1)² × 4, m² × (m+1)²); rows and columns ordered (row index, column index)."""
    m = m or TILE
    key = (xp.__name__, str(dtype), m)
    if key not in _KRON:
        at, g, bt = (xp.asarray([[float(v) for v in row] for row in mat], dtype=dtype)
                     for mat in toom_cook(m, POINTS[m]))
        kron = [(a[:, None, :, None] * a[None, :, None, :]).reshape(a.shape[0] ** 2, a.shape[1] ** 2)
                for a in (bt, g, at)]
        _KRON[key] = tuple(kron)
    return _KRON[key]


def weight_transform(weight, m=None):
    """Gw = G V Gᵀ, shape ((m+1)², 4C, O), from a conv2d weight (O, C, 4, 4) (or a
    transposed convolution's (C_in, C_out, 4, 4), read as the conv2d it is the adjoint of).

    (G ⊗ G) times V laid out (t, t', o, (r, r', c)) -- a copy that keeps W's memory order
    mostly intact -- returned as the (4C, O) transposed view of that ((m+1)², O, 4C)
    array (BLAS reads either orientation). On the CPU the output channels are split over
    the workers (this runs once per layer and step, between the batch-parallel parts)."""
    xp = _xp(weight)
    o, c = weight.shape[:2]
    kg = kron_matrices(xp, weight.dtype, m)[1]
    gw = xp.empty((kg.shape[0], o, 4 * c), dtype=weight.dtype)

    def work(s):
        n = s.stop - s.start
        v = xp.ascontiguousarray(weight[s].reshape(n, c, 2, 2, 2, 2).transpose(2, 4, 0, 3, 5, 1))   # (t, t', o, r, r', c)
        xp.matmul(kg, v.reshape(4, n * 4 * c), out=gw[:, s].reshape(kg.shape[0], n * 4 * c))

    _parallel.map_parts(work, _parallel.parts(xp, o, gw.nbytes))
    return gw.transpose(0, 2, 1)


def weight_transform_adjoint(dgw, c, m=None):
    """dW (O, C, 4, 4) from dGw ((m+1)², 4C, O): dV = Gᵀ dGw G = (G ⊗ G)ᵀ dGw, then V's
    layout back to W's (no copy of dGw when it is the transposed view of a ((m+1)², O, 4C)
    array); output channels split over the CPU workers as in :func:`weight_transform`."""
    xp = _xp(dgw)
    o = dgw.shape[2]
    kg = kron_matrices(xp, dgw.dtype, m)[1]
    dgw_oc = dgw.transpose(0, 2, 1)                                  # ((m+1)², O, 4C)
    dw = xp.empty((o, c, 4, 4), dtype=dgw.dtype)

    def work(s):
        n = s.stop - s.start
        dv = kg.T @ dgw_oc[:, s].reshape(kg.shape[0], n * 4 * c)       # (t, t', o, r, r', c)
        dw[s].reshape(n, c, 2, 2, 2, 2)[...] = dv.reshape(2, 2, n, 2, 2, c).transpose(2, 5, 0, 3, 1, 4)

    _parallel.map_parts(work, _parallel.parts(xp, o, dgw.nbytes))
    return dw


def space_to_depth(x_last, padding, tiles_hw, m=None):
    """u of a channels-last image (n, H, W, C) as the (n, m·Ta+1, 2, m·Tb+1, 2, C) view of
    one zero-padded copy: u[n, p, r, q, r', c] = x̃[n, 2p + r, 2q + r', c]."""
    xp = _xp(x_last)
    m = m or TILE
    n, h, w, c = x_last.shape
    (ph, pw), (ta, tb) = padding, tiles_hw
    buf = xp.empty((n, 2 * m * ta + 2, 2 * m * tb + 2, c), dtype=x_last.dtype)
    buf[:, :ph], buf[:, ph + h:] = 0, 0     # zero only the border strips
    buf[:, :, :pw], buf[:, :, pw + w:] = 0, 0
    buf[:, ph:ph + h, pw:pw + w] = x_last
    return buf.reshape(n, m * ta + 1, 2, m * tb + 1, 2, c)


def _tile_counts(u_shape, m):
    return (u_shape[1] - 1) // m, (u_shape[3] - 1) // m


def input_transform(u, m=None):
    """D = Bᵀ d B for every (m+1)×(m+1) tile d of u: ((m+1)², n·Ta·Tb, 4C), rows (n, α, β),
    columns (r, r', c). The tiles (overlapping by one row and column) are gathered
    by one strided copy, then transformed by one GEMM with Bᵀ ⊗ Bᵀ."""
    xp = _xp(u)
    m = m or TILE
    n, c = u.shape[0], u.shape[5]
    ta, tb = _tile_counts(u.shape, m)
    s_n, s_p, s_r, s_q, s_s, s_c = u.strides
    window = xp.lib.stride_tricks.as_strided(
        u, (m + 1, m + 1, n, ta, tb, 2, 2, c), (s_p, s_q, s_n, m * s_p, m * s_q, s_r, s_s, s_c))
    kb = kron_matrices(xp, u.dtype, m)[0]
    return (kb @ xp.ascontiguousarray(window).reshape((m + 1) ** 2, -1)).reshape((m + 1) ** 2, n * ta * tb, 4 * c)


def input_transform_adjoint(dd, u_shape, dtype, m=None):
    """du = B dD Bᵀ: the (n, m·Ta+1, 2, m·Tb+1, 2, C) gradient of u (a fresh array) from dD,
    the tiles' gradients added where tiles overlap."""
    xp = _xp(dd)
    m = m or TILE
    n, c = u_shape[0], u_shape[5]
    ta, tb = _tile_counts(u_shape, m)
    kb = kron_matrices(xp, dtype, m)[0]
    tile_grads = (kb.T @ dd.reshape((m + 1) ** 2, -1)).reshape(m + 1, m + 1, n, ta, tb, 2, 2, c)
    du = xp.empty(u_shape, dtype=dtype)
    du[:, m * ta], du[:, :, :, m * tb] = 0, 0   # the last row and column only get overlaps
    for i in range(m + 1):
        for j in range(m + 1):
            region = du[:, i:i + m * ta:m, :, j:j + m * tb:m]
            block = tile_grads[i, j].transpose(0, 1, 3, 2, 4, 5)   # (n, α, r, β, r', c)
            if i < m and j < m:   # offsets below m cover every other position once, and
                region[...] = block   # come first in this order: assign, then add the overlaps
            else:
                region += block
    return du


def output_transform(mm, n, tiles_hw, bias=None, m=None):
    """y = Aᵀ M A (+ bias): the channels-last (n, m·Ta, m·Tb, O) image from the products
    M ((m+1)², n·Ta·Tb, O): one GEMM with Aᵀ ⊗ Aᵀ, one copy into image order."""
    xp = _xp(mm)
    m = m or TILE
    (ta, tb), o = tiles_hw, mm.shape[-1]
    ka = kron_matrices(xp, mm.dtype, m)[2]
    tile_values = (ka @ mm.reshape((m + 1) ** 2, -1)).reshape(m, m, n, ta, tb, o).transpose(2, 3, 0, 4, 1, 5)
    y = xp.empty((n, ta, m, tb, m, o), dtype=mm.dtype)
    if bias is None:
        y[...] = tile_values
    else:
        xp.add(tile_values, bias, out=y)
    return y.reshape(n, m * ta, m * tb, o)


def output_transform_adjoint(dy, tiles_hw, m=None):
    """dM = A dY Aᵀ ((m+1)², n·Ta·Tb, O) from a channels-last (n, m·Ta, m·Tb, O) image
    gradient (any strides)."""
    xp = _xp(dy)
    m = m or TILE
    n, o = dy.shape[0], dy.shape[-1]
    ta, tb = tiles_hw
    ka = kron_matrices(xp, dy.dtype, m)[2]
    tile_grads = xp.ascontiguousarray(dy.reshape(n, ta, m, tb, m, o).transpose(2, 4, 0, 1, 3, 5))
    return (ka.T @ tile_grads.reshape(m * m, -1)).reshape((m + 1) ** 2, n * ta * tb, o)


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


# "auto" picks Winograd only when both channel counts reach this: with fewer, a layer is
# bound by memory traffic, not GEMMs, and the transforms cost more than they save
# (benchmarks/bench_conv.py --algorithm).
MIN_AUTO_CHANNELS = 32

# Target size of one batch chunk's D and M on the CPU. Measured on cifar-conv: 256 KiB-1 MiB
# chunks (cache-sized) were slower -- the per-chunk GEMMs get too short -- and 4-64 MiB alike.
CPU_CHUNK_BYTES = 8 << 20

# Keep the transformed input tiles D for the vjp (else recompute them per chunk).
KEEP_TILES = True


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
        u_tail = (TILE * tiles_hw[0] + 1, 2, TILE * tiles_hw[1] + 1, 2, c)
        need_gx = self.parents[0].requires_grad
        gx = xp.empty((n, h, w, c), dtype=g.dtype) if need_gx else None   # channels-last
        g_last = g.transpose(0, 2, 3, 1)

        def work(k):
            dgw = gb = None
            for chunk, d in zip(self.plan[k], self.saved[k]):
                if d is None:
                    d = input_transform(space_to_depth(self.x_last[chunk], padding, tiles_hw))
                dm = output_transform_adjoint(_tiled(g_last[chunk], tiles_hw), tiles_hw)
                dgw = _parallel.accumulate(dgw, xp.matmul(dm.transpose(0, 2, 1), d).transpose(0, 2, 1))   # (4C, O) view
                if need_gx:
                    du = input_transform_adjoint(xp.matmul(dm, gw.transpose(0, 2, 1)),
                                                 (chunk.stop - chunk.start,) + u_tail, g.dtype)
                    gx[chunk] = _unpadded(du, (h, w), padding)
                gb = _parallel.accumulate(gb, channel_sums(g[chunk])) if with_bias else None
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
        gw = weight_transform(weight)                      # ((m+1)², 4·C_out, C_in)
        out = xp.empty((n,) + out_size + (cout,), dtype=x.dtype)   # channels-last
        x_last = x.transpose(0, 2, 3, 1)
        u_tail = (TILE * tiles_hw[0] + 1, 2, TILE * tiles_hw[1] + 1, 2, cout)

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
                dgw = _parallel.accumulate(dgw, xp.matmul(dm.transpose(0, 2, 1), d).transpose(0, 2, 1))   # (4C, O) view
                gb = _parallel.accumulate(gb, channel_sums(g[chunk])) if with_bias else None
            return dgw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        gw_grad = weight_transform_adjoint(_parallel.add_in_order([p[0] for p in partials]), cout)
        grads = (gx.transpose(0, 3, 1, 2) if need_gx else None, gw_grad)
        return grads + (_parallel.add_in_order([p[1] for p in partials]),) if with_bias else grads
