"""The maths of Winograd's F(m×m, 2×2) on the space-to-depth image (used by :mod:`.winograd`).

Space to depth. With x̃ the zero-padded input, a 4×4 stride-2 convolution is a 2×2
stride-1 convolution of the space-to-depth image u with 4C channels:

    u[n, p, q, (r, r', c)] = x̃[n, c, 2p + r, 2q + r'],   V[t, t', (r, r', c), o] = W[o, c, 2t + r, 2t' + r']
    y[n, o, a, b] = Σ_{t, t' ∈ {0, 1}} Σ_k u[n, a + t, b + t', k] · V[t, t', k, o]

Winograd's minimal filtering F(m, 2) (Lavin & Gray 2016, "Fast algorithms for
convolutional neural networks", §4, eq. 8) computes each m×m output tile of that
2×2 convolution from an (m+1)×(m+1) tile d of u with (m+1)² products instead of 4m²:

    Y = Aᵀ [ (G V Gᵀ) ⊙ (Bᵀ d B) ] A

with Aᵀ (m × (m+1)), G ((m+1) × 2), Bᵀ ((m+1) × (m+1)) from the Toom-Cook construction
at the points of :data:`POINTS` (:func:`toom_cook`). F(2, 2) has the coefficients ±1 of
Bᵀ = [[1, −1, 0], [0, 1, 0], [0, −1, 1]]; F(4, 2) at 0, 1, −1, 2 and ∞ has integers up to
8 in Aᵀ and fractions down to 1/6 in G, which costs about one decimal digit in float32
(measured in tests/test_winograd.py).

Each 2-D transform is one GEMM with a Kronecker product, vec(Bᵀ d B) = (Bᵀ ⊗ Bᵀ) vec(d),
applied to every tile at once (the tiles gathered by one strided copy). Each function
below has its adjoint beside it (``*_adjoint``): the vjp of the convolution and the
transposed convolution are built from these pairs in :mod:`.winograd`.
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..backend import get_array_module as _xp
from . import _parallel

# Output tile side m, and the finite interpolation points of F(m, 2) (∞ is the last).
TILE = 4
POINTS = {2: (0, 1), 4: (0, 1, -1, 2)}




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
