"""Winograd F(2×2, 2×2) for 4×4 stride-2 (transposed) convolutions (minivae.ops.winograd):
each transform against Lavin & Gray's matrices written here, dot-product tests of the
adjoints, both ops against nested-loop references, the adjoint identity, gradient checks
(threaded parts, one-image chunks, kept or recomputed tiles), float32 accuracy, dispatch
and PyTorch."""
import json

import numpy
import pytest

from minivae import backend, gradcheck
from minivae.autograd import Tensor
from minivae.nn.conv import Conv2d, ConvTranspose2d
from minivae.ops import _parallel, winograd, winograd_math
from minivae.ops import conv as conv_ops
from minivae.ops.conv import conv2d, conv_transpose2d

from test_conv import _direct_conv2d, _tensor  # noqa: E402  (tests/ is on sys.path under pytest)
import test_parallel  # noqa: E402

workers = test_parallel.workers   # the fixture forcing k worker threads

# Lavin & Gray 2016, eq. 8: F(2, 2), written here from the paper
BT = numpy.array([[1, -1, 0], [0, 1, 0], [0, -1, 1]], dtype=float)
G = numpy.array([[1, 0], [1, 1], [0, 1]], dtype=float)
AT = numpy.array([[1, 1, 0], [0, 1, 1]], dtype=float)


def _matrices(m):
    """(Aᵀ, G, Bᵀ) of F(m, 2): the paper's for m = 2; for m = 4 the module's Toom-Cook
    matrices, which test_toom_cook_matrices_compute_the_correlation checks against a loop."""
    if m == 2:
        return AT, G, BT
    return tuple(numpy.array([[float(v) for v in row] for row in mat]) for mat in winograd_math.toom_cook(m, winograd_math.POINTS[m]))


def _dot(a, b):
    return float((numpy.asarray(a, dtype=float) * numpy.asarray(b, dtype=float)).sum())


def _rel(lhs, rhs):
    return abs(lhs - rhs) / max(1.0, abs(lhs))


def _direct_conv_transpose2d(x, w, b, padding):
    """Scatter loop: y[n, o, 2a + i − p, 2b + j − p] += Σ_c x[n, c, a, b] W[c, o, i, j] (+ b[o])."""
    (ph, pw), s = (padding, padding) if isinstance(padding, int) else padding, 2
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    full = numpy.zeros((n, cout, (h - 1) * s + kh, (wd - 1) * s + kw))
    for a in range(h):
        for c in range(wd):
            for i in range(kh):
                for j in range(kw):
                    for o in range(cout):
                        full[:, o, s * a + i, s * c + j] += (x[:, :, a, c] * w[:, o, i, j]).sum(axis=1)
    return full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw] + b[None, :, None, None]


# ------------------------------------------------------------------ the transforms, one by one

@pytest.mark.parametrize("m,points", [(2, (0, 1)), (4, (0, 1, -1, 2)), (4, (0, 1, -1, -2)), (3, (0, 1, -1))])
def test_toom_cook_matrices_compute_the_correlation(m, points):
    """Aᵀ[(G g) ⊙ (Bᵀ d)] = (Σ_k d[i + k] g[k])_i for random d, g (the definition of F(m, 2)),
    with exact rational arithmetic, and F(2, 2) is the paper's."""
    from fractions import Fraction
    at, g_mat, bt = winograd_math.toom_cook(m, points)
    gen = numpy.random.default_rng(0)
    for _ in range(3):
        d = [Fraction(int(v)) for v in gen.integers(-9, 10, m + 1)]
        g = [Fraction(int(v)) for v in gen.integers(-9, 10, 2)]
        gg = [sum(row[k] * g[k] for k in range(2)) for row in g_mat]
        bd = [sum(row[k] * d[k] for k in range(m + 1)) for row in bt]
        y = [sum(at[i][j] * gg[j] * bd[j] for j in range(m + 1)) for i in range(m)]
        assert y == [d[i] * g[0] + d[i + 1] * g[1] for i in range(m)]
    assert all(v.denominator == 1 for row in bt for v in row)     # Bᵀ's rows scaled to integers
    if m == 2:
        assert numpy.array_equal(_matrices(2)[2], numpy.array([[float(v) for v in r] for r in bt]))
        assert numpy.array_equal(G, numpy.array([[float(v) for v in r] for r in g_mat]))
        assert numpy.array_equal(AT, numpy.array([[float(v) for v in r] for r in at]))
    with pytest.raises(ValueError, match="needs 4 finite points"):
        winograd_math.toom_cook(4, (0, 1))


@pytest.mark.parametrize("m", [2, 4])
def test_space_to_depth_index_formula(m):
    gen = numpy.random.default_rng(1)
    n, h, w, c, (ph, pw), (ta, tb) = 2, 6, 4, 3, (1, 2), (3, 3)
    x = gen.standard_normal((n, h, w, c))
    u = winograd_math.space_to_depth(x, (ph, pw), (ta, tb), m=m)
    assert u.shape == (n, m * ta + 1, 2, m * tb + 1, 2, c)
    for p in range(m * ta + 1):
        for r in range(2):
            for q in range(m * tb + 1):
                for r2 in range(2):
                    i, j = 2 * p + r - ph, 2 * q + r2 - pw   # x̃[2p + r, 2q + r'] is x[i, j] or padding
                    expected = x[:, i, j] if 0 <= i < h and 0 <= j < w else numpy.zeros((n, c))
                    assert numpy.array_equal(u[:, p, r, q, r2], expected), (p, r, q, r2)


@pytest.mark.parametrize("m", [2, 4])
def test_input_transform_is_bt_d_b_on_every_tile(m):
    gen = numpy.random.default_rng(2)
    n, ta, tb, c, bt = 2, 3, 2, 3, _matrices(m)[2]
    u = gen.standard_normal((n, m * ta + 1, 2, m * tb + 1, 2, c))
    expected = numpy.zeros((m + 1, m + 1, n, ta, tb, 2, 2, c))
    for a in range(ta):
        for b in range(tb):
            d = u[:, m * a:m * a + m + 1, :, m * b:m * b + m + 1]       # (n, m+1, r, m+1, r', c): one tile
            expected[:, :, :, a, b] = numpy.einsum("xi,yj,nirjsc->xynrsc", bt, bt, d)
    got = winograd_math.input_transform(u, m=m)
    numpy.testing.assert_allclose(got, expected.reshape((m + 1) ** 2, n * ta * tb, 4 * c), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m", [2, 4])
def test_weight_transform_is_g_v_gt(m):
    gen = numpy.random.default_rng(3)
    o, c, g_mat = 5, 3, _matrices(m)[1]
    w = gen.standard_normal((o, c, 4, 4))
    v = numpy.zeros((2, 2, 2, 2, c, o))    # V[t, t', r, r', c, o] = W[o, c, 2t + r, 2t' + r']
    for t in range(2):
        for t2 in range(2):
            for r in range(2):
                for r2 in range(2):
                    v[t, t2, r, r2] = w[:, :, 2 * t + r, 2 * t2 + r2].T
    expected = numpy.einsum("xt,ys,tsk->xyk", g_mat, g_mat, v.reshape(2, 2, -1)).reshape((m + 1) ** 2, 4 * c, o)
    numpy.testing.assert_allclose(winograd_math.weight_transform(w, m=m), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("with_bias", [False, True])
def test_output_transform_is_at_m_a(with_bias, m):
    gen = numpy.random.default_rng(4)
    n, ta, tb, o, at = 2, 3, 2, 4, _matrices(m)[0]
    mm = gen.standard_normal(((m + 1) ** 2, n * ta * tb, o))
    bias = gen.standard_normal(o) if with_bias else numpy.zeros(o)
    tiles6 = mm.reshape(m + 1, m + 1, n, ta, tb, o)
    expected = numpy.zeros((n, m * ta, m * tb, o))
    for a in range(ta):
        for b in range(tb):
            tile = numpy.einsum("ix,jy,xyno->nijo", at, at, tiles6[:, :, :, a, b])
            expected[:, m * a:m * a + m, m * b:m * b + m] = tile + bias
    got = winograd_math.output_transform(mm, n, (ta, tb), bias if with_bias else None, m=m)
    numpy.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m", [2, 4])
def test_each_adjoint_passes_the_dot_product_test(m):
    """⟨T a, b⟩ = ⟨a, T* b⟩ for the three transform/adjoint pairs (float64)."""
    gen = numpy.random.default_rng(5)
    n, ta, tb, c, o, p = 2, 3, 2, 3, 4, (m + 1) ** 2
    u = gen.standard_normal((n, m * ta + 1, 2, m * tb + 1, 2, c))
    dd = gen.standard_normal((p, n * ta * tb, 4 * c))
    du = winograd_math.input_transform_adjoint(dd, u.shape, numpy.float64, m=m)
    assert du.shape == u.shape
    assert _rel(_dot(winograd_math.input_transform(u, m=m), dd), _dot(u, du)) < 1e-12

    mm, dy = gen.standard_normal((p, n * ta * tb, o)), gen.standard_normal((n, m * ta, m * tb, o))
    assert _rel(_dot(winograd_math.output_transform(mm, n, (ta, tb), m=m), dy),
                _dot(mm, winograd_math.output_transform_adjoint(dy, (ta, tb), m=m))) < 1e-12
    # a non-contiguous image gradient (any strides) gives the same dM
    dy_view = numpy.ascontiguousarray(dy.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    numpy.testing.assert_array_equal(winograd_math.output_transform_adjoint(dy_view, (ta, tb), m=m),
                                     winograd_math.output_transform_adjoint(dy, (ta, tb), m=m))

    w, dgw = gen.standard_normal((o, c, 4, 4)), gen.standard_normal((p, 4 * c, o))
    dw = winograd_math.weight_transform_adjoint(dgw, c, m=m)
    assert dw.shape == w.shape
    assert _rel(_dot(winograd_math.weight_transform(w, m=m), dgw), _dot(w, dw)) < 1e-12


def test_tiles_and_applies():
    assert winograd.tiles((7, 6), m=2) == (4, 3) and winograd.tiles((1, 2), m=2) == (1, 1)
    assert winograd.tiles((7, 8), m=4) == (2, 2) and winograd.tiles((16, 5), m=4) == (4, 2)
    assert winograd.applies((4, 4), (2, 2), (1, 1), (14, 10))
    assert not winograd.applies((4, 4), (2, 2), (1, 1), (7, 8))        # odd padded size
    assert not winograd.applies((3, 3), (2, 2), (1, 1), (8, 8))
    assert not winograd.applies((4, 4), (1, 1), (1, 1), (8, 8))
    assert not winograd.applies((4, 4), (2, 2), (1, 1), (8, 8), output_padding=(1, 1))


# ------------------------------------------------------------------ the ops against loops

def _layout(a, kind):
    """An NCHW-shaped float64 tensor on the active backend: contiguous NCHW, channels-last
    memory, or a strided slice of a bigger array."""
    if kind == "nchw":
        return _tensor(a)
    if kind == "last":
        t = Tensor(backend.to_device(numpy.ascontiguousarray(a.transpose(0, 2, 3, 1)), numpy.float64))
        return Tensor(t.data.transpose(0, 3, 1, 2), requires_grad=True)
    big = numpy.zeros(a.shape[:2] + (2 * a.shape[2], a.shape[3] + 1))
    big[:, :, ::2, 1:] = a
    return Tensor(backend.to_device(big, numpy.float64)[:, :, ::2, 1:], requires_grad=True)


# (batch, input size, padding, bias, layout): odd/even/non-square outputs, padding 0, 1, 2, (1, 2)
CONV_CASES = [(1, (14, 14), 1, True, "nchw"), (3, (10, 6), 1, False, "last"), (3, (8, 8), 0, True, "strided"),
              (1, (10, 8), 2, True, "last"), (3, (12, 12), 1, True, "nchw"), (3, (6, 4), (1, 2), True, "strided")]


@pytest.mark.parametrize("n,size,padding,with_bias,layout", CONV_CASES)
def test_conv2d_winograd_equals_direct_loop(xp, n, size, padding, with_bias, layout):
    gen = numpy.random.default_rng(6)
    x, w = gen.standard_normal((n, 3) + size), gen.standard_normal((5, 3, 4, 4))
    b = gen.standard_normal(5) if with_bias else numpy.zeros(5)
    xt = _layout(x, layout)
    assert numpy.array_equal(xt.numpy(), x)
    y = conv2d(xt, _tensor(w), _tensor(b) if with_bias else None, stride=2, padding=padding, algorithm="winograd")
    assert isinstance(y._fn, winograd.WinogradConv2d)
    numpy.testing.assert_allclose(y.numpy(), _direct_conv2d(x, w, b, 2, padding), rtol=1e-12, atol=1e-12)


# (batch, input size, padding, bias, layout): odd input sizes too
CONVT_CASES = [(1, (5, 3), 1, True, "nchw"), (3, (4, 4), 0, False, "last"), (3, (3, 6), 2, True, "strided"),
               (1, (7, 7), 1, False, "nchw"), (3, (4, 3), (1, 2), True, "last")]


@pytest.mark.parametrize("n,size,padding,with_bias,layout", CONVT_CASES)
def test_conv_transpose2d_winograd_equals_scatter_loop(xp, n, size, padding, with_bias, layout):
    gen = numpy.random.default_rng(7)
    x, w = gen.standard_normal((n, 3) + size), gen.standard_normal((3, 5, 4, 4))
    b = gen.standard_normal(5) if with_bias else numpy.zeros(5)
    expected = _direct_conv_transpose2d(x, w, b, padding)
    y = conv_transpose2d(_layout(x, layout), _tensor(w), _tensor(b) if with_bias else None, stride=2,
                         padding=padding, algorithm="winograd")
    assert isinstance(y._fn, winograd.WinogradConvTranspose2d)
    numpy.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_scatter_loop_is_the_im2col_transposed_conv():
    """The loop reference agrees with the existing (independently tested) im2col path."""
    gen = numpy.random.default_rng(8)
    x, w, b = gen.standard_normal((2, 3, 4, 5)), gen.standard_normal((3, 2, 4, 4)), gen.standard_normal(2)
    y = conv_transpose2d(_tensor(x), _tensor(w), _tensor(b), stride=2, padding=1, algorithm="im2col")
    numpy.testing.assert_allclose(y.numpy(), _direct_conv_transpose2d(x, w, b, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,padding", [((14, 10), 1), ((8, 6), 0), ((10, 12), 2)])
def test_adjoint_identity_on_the_winograd_path(xp, size, padding):
    """⟨conv2d_W(x), y⟩ = ⟨x, conv_transpose2d_W(y)⟩ with both ops on Winograd."""
    gen = numpy.random.default_rng(9)
    x, w = gen.standard_normal((2, 3) + size), gen.standard_normal((4, 3, 4, 4))
    y_conv = conv2d(_tensor(x), _tensor(w), stride=2, padding=padding, algorithm="winograd")
    y = gen.standard_normal(y_conv.shape)
    x_back = conv_transpose2d(_tensor(y), _tensor(w), stride=2, padding=padding, algorithm="winograd")
    assert x_back.shape == x.shape
    assert _rel(_dot(y_conv.numpy(), y), _dot(x, x_back.numpy())) < 1e-12


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("size,padding", [((6, 6), 1), ((10, 4), 2), ((5, 3), 1)])
def test_gradcheck(xp, transposed, size, padding):
    if not transposed and (size[0] + 2 * padding) % 2:
        size = (size[0] + 1, size[1] + 1)   # conv2d: an even padded size, odd output sizes
    x = gradcheck.random_input((2, 3) + size, seed=10)
    w, b = gradcheck.random_input((3, 4, 4, 4) if transposed else (4, 3, 4, 4), seed=11), \
        gradcheck.random_input((4,), seed=12)
    op = conv_transpose2d if transposed else conv2d
    gradcheck.check(lambda x, w, b: op(x, w, b, stride=2, padding=padding, algorithm="winograd"), [x, w, b],
                    mode="directional", n_directions=2)
    data = Tensor(x.data, requires_grad=False)   # a data input: no input gradient, W and b still right
    y = op(data, w, b, stride=2, padding=padding, algorithm="winograd")
    assert y._fn.backward(backend.xp().ones(y.shape))[0] is None
    gradcheck.check(lambda w, b: op(data, w, b, stride=2, padding=padding, algorithm="winograd"), [w, b],
                    mode="directional", n_directions=2)


def _run(op, x, w, b, g, **kwargs):
    for t in (x, w, b):
        t.grad = None
    y = op(x, w, b, **kwargs)
    y.backward(g)
    return [y.numpy()] + [backend.to_host(t.grad) for t in (x, w, b)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_threaded_parts_and_chunks(workers, monkeypatch, transposed, keep_tiles):
    """2 or 3 workers, one image per chunk, tiles kept or recomputed: the numbers of one part
    (and of the loops), and a gradient check on the threaded path."""
    backend.use("numpy", dtype="float64", seed=0)
    monkeypatch.setattr(winograd, "CPU_CHUNK_BYTES", 1)
    monkeypatch.setattr(winograd, "KEEP_TILES", keep_tiles)
    x = gradcheck.random_input((7, 3) + ((5, 3) if transposed else (10, 6)), seed=13)
    w = gradcheck.random_input((3, 4, 4, 4) if transposed else (4, 3, 4, 4), seed=14)
    b = gradcheck.random_input((4,), seed=15)
    op = conv_transpose2d if transposed else conv2d
    kwargs = dict(stride=2, padding=1, algorithm="winograd")
    g = numpy.random.default_rng(16).standard_normal(op(x, w, b, **kwargs).shape)
    seen, real = [], _parallel.map_parts
    monkeypatch.setattr(_parallel, "map_parts", lambda work, slices: seen.append(slices) or real(work, slices))
    results = []
    for k in (1, 2, 3):
        workers(k)
        seen.clear()
        results.append(_run(op, x, w, b, g, **kwargs))
        plans = [s for s in seen if isinstance(s[0], list)]   # forward: parts of one-image chunks
        assert plans and all(len(p) == k and all(c.stop - c.start == 1 for part in p for c in part) for p in plans)
    for one, many in zip(results[0], results[1]):
        numpy.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)
    for one, many in zip(results[0], results[2]):
        numpy.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)
    loop = _direct_conv_transpose2d if transposed else (lambda x, w, b, p: _direct_conv2d(x, w, b, 2, p))
    numpy.testing.assert_allclose(results[2][0], loop(x.numpy(), w.numpy(), b.numpy(), 1), rtol=1e-12, atol=1e-12)
    gradcheck.check(lambda x, w, b: op(x, w, b, **kwargs), [x, w, b], mode="directional", n_directions=2)


# ------------------------------------------------------------------ float32

def test_float32_accuracy_and_dtype():
    """Against the float64 loop on the same float32 values. Measured max|err|/max|y| with
    F(4, 2) (the default tile): 1.4e-6 for conv2d (32 -> 16 channels; im2col 3.4e-7) and
    1.1e-6 for the transposed conv (im2col 9.3e-8) -- F(4, 2)'s coefficients (up to 8 in
    Aᵀ, 1/6 in G) cost about one decimal digit; F(2, 2)'s ±1 transforms cost none
    (3.4e-7 and 2.1e-7 when this test was written for them). At the cifar-conv shapes
    (64 -> 128, 16x16): 6.4e-6 max, 1.8e-6 rms, against PyTorch in float64."""
    gen = numpy.random.default_rng(17)
    x = gen.standard_normal((2, 32, 12, 12)).astype(numpy.float32)
    w = (gen.standard_normal((16, 32, 4, 4)) / 20).astype(numpy.float32)
    b = gen.standard_normal(16).astype(numpy.float32)
    y = conv2d(Tensor(x, requires_grad=True), Tensor(w), Tensor(b), stride=2, padding=1, algorithm="winograd")
    ref = _direct_conv2d(x.astype(float), w.astype(float), b.astype(float), 2, 1)
    assert y.dtype == numpy.float32
    assert numpy.abs(y.numpy() - ref).max() / numpy.abs(ref).max() < 1e-5
    wt = Tensor(w.copy(), requires_grad=True)   # read as (C_in 16, C_out 32): back to x's shape
    xt = Tensor(y.numpy(), requires_grad=True)
    z = conv_transpose2d(xt, wt, Tensor(x[0, :, 0, 0].copy(), requires_grad=True), stride=2, padding=1,
                         algorithm="winograd")
    ref_t = _direct_conv_transpose2d(y.numpy().astype(float), wt.numpy().astype(float), x[0, :, 0, 0].astype(float), 1)
    assert z.dtype == numpy.float32
    assert numpy.abs(z.numpy() - ref_t).max() / numpy.abs(ref_t).max() < 1e-5
    z.backward(numpy.ones(z.shape, numpy.float32))
    assert xt.grad.dtype == wt.grad.dtype == numpy.float32


# ------------------------------------------------------------------ dispatch

def test_bad_algorithm_and_geometry_are_refused():
    x, w = Tensor(numpy.zeros((1, 3, 8, 8))), Tensor(numpy.zeros((4, 3, 4, 4)))
    for op in (conv2d, conv_transpose2d):
        with pytest.raises(ValueError, match=r"unknown algorithm 'fft'.*auto, im2col, winograd"):
            op(x if op is conv2d else Tensor(numpy.zeros((1, 4, 8, 8))), w, stride=2, algorithm="fft")
    with pytest.raises(ValueError, match=r"conv2d: algorithm='winograd' needs a 4x4 kernel"):
        conv2d(x, Tensor(numpy.zeros((4, 3, 3, 3))), stride=2, padding=1, algorithm="winograd")
    with pytest.raises(ValueError, match="winograd"):
        conv2d(x, w, stride=1, padding=1, algorithm="winograd")
    with pytest.raises(ValueError, match="winograd"):
        conv2d(Tensor(numpy.zeros((1, 3, 7, 8))), w, stride=2, padding=1, algorithm="winograd")   # 9 rows
    with pytest.raises(ValueError, match=r"conv_transpose2d: algorithm='winograd'"):
        conv_transpose2d(Tensor(numpy.zeros((1, 4, 5, 5))), w, stride=2, padding=1, output_padding=1,
                         algorithm="winograd")


def _fn_class(op, cin, cout, transposed=False, side=8):
    x = Tensor(backend.to_device(numpy.ones((1, cin, side, side))), requires_grad=True)
    w = Tensor(backend.to_device(numpy.ones((cin, cout, 4, 4) if transposed else (cout, cin, 4, 4))))
    return type(op(x, w, stride=2, padding=1)._fn)


def test_used_fraction_counts_the_outputs_the_tiles_keep():
    """Output side (s + 2p)/2 − 1 of the 2×2 convolution on the space-to-depth image, over
    whole 4×4 tiles: 7×7 keeps 49 of 64, 8×8 all, 2×2 4 of 16, 7×5 35 of 64."""
    assert winograd.used_fraction((14, 14), (1, 1)) == 49 / 64
    assert winograd.used_fraction((16, 16), (1, 1)) == 1.0
    assert winograd.used_fraction((4, 4), (1, 1)) == 4 / 16
    assert winograd.used_fraction((14, 10), (1, 1)) == 35 / 64
    assert winograd.used_fraction((12, 12), (2, 2)) == 49 / 64


def test_auto_picks_winograd_for_wide_layers():
    """Winograd when min(channels) × used fraction ≥ 32 (measured; see MIN_AUTO_CHANNELS)."""
    backend.use("numpy", dtype="float64", seed=0)
    assert winograd.MIN_AUTO_CHANNELS == 32
    assert _fn_class(conv2d, 64, 128) is winograd.WinogradConv2d
    assert _fn_class(conv2d, 32, 64, side=16) is winograd.WinogradConv2d
    assert _fn_class(conv2d, 32, 64, side=14) is conv_ops.Conv2d          # 32·49/64 < 32 (mnist-conv)
    assert _fn_class(conv2d, 64, 128, side=14) is winograd.WinogradConv2d  # 64·49/64 ≥ 32
    assert _fn_class(conv2d, 128, 256, side=4) is winograd.WinogradConv2d  # 2×2 of 4×4: 128/4 = 32, the bound
    assert _fn_class(conv2d, 96, 256, side=4) is conv_ops.Conv2d           # 96/4 = 24
    assert _fn_class(conv2d, 16, 64, side=16) is conv_ops.Conv2d
    assert _fn_class(conv2d, 3, 64, side=32) is conv_ops.Conv2d
    assert _fn_class(conv_transpose2d, 128, 64, True, side=8) is winograd.WinogradConvTranspose2d
    assert _fn_class(conv_transpose2d, 64, 32, True, side=7) is conv_ops.ConvTranspose2d   # mnist-conv
    assert _fn_class(conv_transpose2d, 64, 32, True, side=8) is winograd.WinogradConvTranspose2d
    assert _fn_class(conv_transpose2d, 64, 3, True) is conv_ops.ConvTranspose2d


def test_auto_never_picks_winograd_on_cupy(cupy_backend):
    """"auto" is Winograd on NumPy only (measured there); CuPy keeps im2col."""
    backend.use(cupy_backend, dtype="float64", seed=0)
    assert _fn_class(conv2d, 64, 128) is conv_ops.Conv2d
    assert _fn_class(conv_transpose2d, 128, 64, True) is conv_ops.ConvTranspose2d


def test_layers_go_through_winograd_and_gradcheck():
    backend.use("numpy", dtype="float64", seed=0)
    conv, tconv = Conv2d(64, 64, 4, stride=2, padding=1), ConvTranspose2d(64, 64, 4, stride=2, padding=1)
    x = gradcheck.random_input((2, 64, 8, 8), seed=18)
    y = conv(x)   # "auto": 4×4 outputs fill the tiles
    assert isinstance(y._fn, winograd.WinogradConv2d) and isinstance(tconv(y)._fn, winograd.WinogradConvTranspose2d)
    numpy.testing.assert_allclose(y.numpy(), _direct_conv2d(x.numpy(), conv.weight.numpy(), conv.bias.numpy(), 2, 1),
                                  rtol=1e-12, atol=1e-12)
    conv.algorithm = tconv.algorithm = "winograd"   # partly filled tiles below: "auto" takes im2col there
    for layer, shape in [(conv, (2, 64, 4, 4)), (tconv, (2, 64, 3, 2))]:
        gradcheck.check_module(layer, gradcheck.random_input(shape, seed=19), mode="directional", n_directions=1)


@pytest.mark.torch
def test_against_pytorch_at_cifar_shapes():
    torch = pytest.importorskip("torch")
    gen = numpy.random.default_rng(20)
    cases = [(conv2d, torch.nn.functional.conv2d, (4, 64, 16, 16), (128, 64, 4, 4), 128),
             (conv_transpose2d, torch.nn.functional.conv_transpose2d, (4, 128, 8, 8), (128, 64, 4, 4), 64)]
    for ours, theirs, xs, ws, o in cases:
        x, w = gen.standard_normal(xs).astype(numpy.float32), (gen.standard_normal(ws) / 30).astype(numpy.float32)
        b = gen.standard_normal(o).astype(numpy.float32)
        mine = [Tensor(a, requires_grad=True) for a in (x, w, b)]
        ref = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = ours(*mine, stride=2, padding=1)
        assert isinstance(y._fn, (winograd.WinogradConv2d, winograd.WinogradConvTranspose2d))
        yt = theirs(*ref, stride=2, padding=1)
        g = gen.standard_normal(y.shape).astype(numpy.float32)
        y.backward(g)
        yt.backward(torch.from_numpy(g))
        for a, t in [(y.data, yt.detach())] + [(m.grad, r.grad) for m, r in zip(mine, ref)]:
            t = t.numpy()
            assert a.dtype == numpy.float32
            assert numpy.abs(a - t).max() <= 1e-5 * numpy.abs(t).max()


def test_layer_algorithm_attribute_and_set_algorithm():
    """nn layers take ``algorithm`` like the ops; set_algorithm switches every conv layer of a model,
    and both algorithms compute the same function (float64)."""
    from minivae.nn.conv import set_algorithm
    from minivae.vae import build_model
    backend.use("numpy", dtype="float64", seed=0)
    assert type(Conv2d(64, 64, 4, stride=2, padding=1, algorithm="im2col")(
        gradcheck.random_input((2, 64, 4, 4), seed=1))._fn) is conv_ops.Conv2d
    with pytest.raises(ValueError, match="unknown algorithm 'fft'"):
        ConvTranspose2d(4, 4, 4, algorithm="fft")
    model = build_model("cifar-conv")
    x = Tensor(backend.to_device(numpy.random.default_rng(2).random((2, 3, 32, 32))))
    eps = backend.to_device(numpy.zeros((2, 64)))
    assert set_algorithm(model, "im2col") == 6
    exact = model(x, eps=eps).logits.numpy()
    assert set_algorithm(model, "winograd") == 6
    numpy.testing.assert_allclose(model(x, eps=eps).logits.numpy(), exact, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        set_algorithm(model, "fast")


def test_run_setting_reaches_the_layers(tmp_path):
    """--conv-algorithm is recorded in config.json and every conv layer of the run's model uses it."""
    from minivae.run import resolve, load_run
    from minivae.run.training import Trainer
    from run_helpers import tiny_settings
    settings = tiny_settings(out=str(tmp_path / "run"), preset="sprites-conv", conv_algorithm="im2col",
                             epochs=1, max_steps=1)
    settings.pop("hidden", None)
    Trainer(resolve(settings)).run()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["run"]["conv_algorithm"] == "im2col"
    model = load_run(str(tmp_path / "run")).model
    algorithms = {m.algorithm for _, m in model.named_modules() if isinstance(m, (Conv2d, ConvTranspose2d))}
    assert algorithms == {"im2col"}
