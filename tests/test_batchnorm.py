"""batch_norm and BatchNorm1d/2d: hand-computed statistics, running-stat updates,
eval mode, float64 gradient checks (train and eval), errors, and PyTorch."""
import numpy
import pytest

from minivae import backend, gradcheck
from minivae.autograd import Tensor
from minivae.nn.batchnorm import BatchNorm1d, BatchNorm2d
from minivae.ops.batchnorm import batch_norm


def test_train_forward_normalises_each_channel(xp):
    gen = numpy.random.default_rng(0)
    x = gen.normal(3.0, 2.0, size=(8, 3, 4, 5))
    w, b = numpy.array([1.0, 2.0, -0.5]), numpy.array([0.0, 1.0, 3.0])
    y = batch_norm(Tensor(x), Tensor(w), Tensor(b), None, None, training=True).numpy()
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    expected = (x - mean[:, None, None]) / numpy.sqrt(var[:, None, None] + 1e-5) * w[:, None, None] + b[:, None, None]
    numpy.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # per channel: mean b, standard deviation |w| (up to ε)
    numpy.testing.assert_allclose(y.mean(axis=(0, 2, 3)), b, atol=1e-12)
    numpy.testing.assert_allclose(y.std(axis=(0, 2, 3)), numpy.abs(w) * numpy.sqrt(var / (var + 1e-5)), rtol=1e-12)


def test_running_statistics_and_eval_mode(xp):
    """Three train steps on known batches, then eval uses the hand-computed running stats."""
    bn = BatchNorm1d(2)
    batches = [numpy.array([[1.0, 10.0], [3.0, 14.0]]),
               numpy.array([[0.0, -2.0], [4.0, 2.0], [8.0, 6.0]]),
               numpy.array([[5.0, 5.0], [7.0, 1.0]])]
    rm, rv = numpy.zeros(2), numpy.ones(2)
    for batch in batches:
        bn(Tensor(backend.to_device(batch)))
        n = len(batch)
        rm = 0.9 * rm + 0.1 * batch.mean(0)
        rv = 0.9 * rv + 0.1 * batch.var(0) * n / (n - 1)   # unbiased
    # by hand for channel 0: means 2, 4, 6; unbiased variances 2, 16, 2
    assert rm[0] == pytest.approx(0.1 * (0.81 * 2 + 0.9 * 4 + 6))
    assert rv[0] == pytest.approx(0.729 + 0.1 * (0.81 * 2 + 0.9 * 16 + 2))
    numpy.testing.assert_allclose(backend.to_host(bn.running_mean), rm, rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(bn.running_var), rv, rtol=1e-12)
    assert int(backend.to_host(bn.num_batches_tracked)) == 3
    bn.eval()
    x = numpy.array([[2.0, 3.0], [-1.0, 0.5], [4.0, 4.0]])
    y = bn(Tensor(backend.to_device(x))).numpy()
    numpy.testing.assert_allclose(y, (x - rm) / numpy.sqrt(rv + 1e-5), rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(bn.running_mean), rm, rtol=1e-12)   # eval: no update
    assert int(backend.to_host(bn.num_batches_tracked)) == 3


def test_batchnorm2d_running_stats_use_all_pixels(xp):
    bn = BatchNorm2d(3, momentum=0.5)
    x = numpy.random.default_rng(1).standard_normal((4, 3, 2, 5))
    bn(Tensor(x))
    m = x.size // 3
    numpy.testing.assert_allclose(backend.to_host(bn.running_mean), 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(bn.running_var),
                                  0.5 + 0.5 * x.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-12)


def test_cumulative_average_when_momentum_is_none(xp):
    bn = BatchNorm1d(1, momentum=None)
    for value in ([1.0, 3.0], [5.0, 7.0], [0.0, 0.0]):
        bn(Tensor(backend.to_device(numpy.array(value)[:, None])))
    assert float(backend.to_host(bn.running_mean)[0]) == pytest.approx((2 + 6 + 0) / 3)


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 5), (3, 2, 3, 4)])
def test_gradcheck_train(xp, shape):
    x = gradcheck.random_input(shape, seed=2, low=-2, high=3)
    c = shape[1]
    w, b = gradcheck.random_input((c,), seed=3, low=0.5, high=2), gradcheck.random_input((c,), seed=4)
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, None, None, training=True), [x, w, b],
                    mode="directional", n_directions=3)
    gradcheck.check(lambda x: batch_norm(x, None, None, None, None, training=True), [x], mode="directional")


def _channels_last(t):
    """The same values as an NCHW-shaped view of channels-last memory (what convs produce)."""
    a = t.data
    axes = (0,) + tuple(range(2, a.ndim)) + (1,)
    back = (0, a.ndim - 1) + tuple(range(1, a.ndim - 1))
    return Tensor(a.transpose(axes).copy().transpose(back), requires_grad=t.requires_grad)


@pytest.mark.parametrize("shape", [(4, 2, 5), (3, 2, 3, 4)])
def test_channels_last_inputs(xp, shape):
    """Channels-last memory takes the (rows, C) path: same values, gradients and layout."""
    x = gradcheck.random_input(shape, seed=16)
    xl = _channels_last(x)
    assert not xl.data.flags.c_contiguous
    w, b = gradcheck.random_input((2,), seed=17), gradcheck.random_input((2,), seed=18)
    y, yl = batch_norm(x, w, b, None, None, True), batch_norm(xl, w, b, None, None, True)
    numpy.testing.assert_allclose(yl.numpy(), y.numpy(), rtol=1e-12, atol=1e-12)
    assert yl.data.strides == xl.data.strides   # the layout is kept for the next layer
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, None, None, training=True), [xl, w, b],
                    mode="directional", n_directions=3)
    rm, rv = (backend.to_device(numpy.full(2, v), numpy.float64) for v in (0.3, 1.7))
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, rm, rv, training=False), [xl, w, b],
                    mode="directional", n_directions=2)


def test_full_jacobian_train_tiny(xp):
    x = gradcheck.random_input((4, 2), seed=5)
    w, b = gradcheck.random_input((2,), seed=6), gradcheck.random_input((2,), seed=7)
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, None, None, training=True), [x, w, b], mode="full")


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 2, 4)])
def test_gradcheck_eval(xp, shape):
    c = shape[1]
    x = gradcheck.random_input(shape, seed=8)
    w, b = gradcheck.random_input((c,), seed=9), gradcheck.random_input((c,), seed=10)
    rm = backend.to_device(numpy.linspace(-0.5, 0.5, c), numpy.float64)
    rv = backend.to_device(numpy.linspace(0.5, 2.0, c), numpy.float64)
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, rm, rv, training=False), [x, w, b],
                    mode="directional", n_directions=3)
    # eval is the affine map x ↦ γ (x − μ_run)/sqrt(σ²_run + ε) + β: its vjp is g·γ/sqrt(σ²_run + ε)
    g = numpy.random.default_rng(11).standard_normal(shape)
    x.grad = None   # gradcheck leaves its own gradient behind
    batch_norm(x, w, b, rm, rv, training=False).backward(backend.to_device(g))
    scale = backend.to_host(w.data) / numpy.sqrt(backend.to_host(rv) + 1e-5)
    numpy.testing.assert_allclose(backend.to_host(x.grad), g * scale.reshape((1, c) + (1,) * (len(shape) - 2)), rtol=1e-12)


def test_module_gradcheck_both_modes(xp):
    for bn, shape in [(BatchNorm1d(3), (5, 3)), (BatchNorm2d(2), (3, 2, 3, 3))]:
        bn.weight.data[...] = backend.to_device(numpy.linspace(0.5, 1.5, shape[1]), numpy.float64)
        x = gradcheck.random_input(shape, seed=12)
        gradcheck.check_module(bn, x, mode="directional", n_directions=2)
        bn.eval()
        gradcheck.check_module(bn, x, mode="directional", n_directions=2)


def test_buffers_and_state_dict():
    bn = BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn(Tensor(numpy.random.default_rng(13).standard_normal((2, 4, 3, 3)).astype(numpy.float32)))
    assert "num_batches_tracked" in dict(bn.named_buffers())   # still registered after the update
    assert bn.running_mean.dtype == numpy.float32 and int(bn.num_batches_tracked) == 1
    bn.reset_running_stats()
    assert int(bn.num_batches_tracked) == 0 and float(bn.running_var.sum()) == 4.0


def test_float32_stays_float32():
    x = Tensor(numpy.random.default_rng(14).standard_normal((4, 3, 2, 2)).astype(numpy.float32), requires_grad=True)
    bn = BatchNorm2d(3)
    y = bn(x)
    y.backward(numpy.ones(y.shape, numpy.float32))
    assert y.dtype == x.grad.dtype == bn.weight.grad.dtype == numpy.float32


def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*\(2, 4, 5, 5\)"):
        BatchNorm2d(3)(Tensor(numpy.zeros((2, 4, 5, 5), numpy.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\).*\(2, 3, 5, 5\)"):
        BatchNorm1d(3)(Tensor(numpy.zeros((2, 3, 5, 5), numpy.float32)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(Tensor(numpy.zeros((1, 3), numpy.float32)))
    with pytest.raises(ValueError, match=r"batch_norm.*\(4, 5\).*\(3,\)"):
        batch_norm(Tensor(numpy.zeros((4, 5), numpy.float32)), Tensor(numpy.ones(3, numpy.float32)),
                   Tensor(numpy.zeros(3, numpy.float32)), None, None, training=True)


@pytest.mark.torch
def test_against_pytorch():
    torch = pytest.importorskip("torch")
    backend.use("numpy", dtype="float64", seed=0)
    gen = numpy.random.default_rng(15)
    for ours, ref, shape in [(BatchNorm1d(4), torch.nn.BatchNorm1d(4), (6, 4)),
                             (BatchNorm1d(3), torch.nn.BatchNorm1d(3), (5, 3, 7)),
                             (BatchNorm2d(3), torch.nn.BatchNorm2d(3), (4, 3, 5, 6))]:
        ref = ref.double()
        w, b = gen.uniform(0.5, 2, shape[1]), gen.standard_normal(shape[1])
        ours.weight.data[...], ours.bias.data[...] = w, b
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(w))
            ref.bias.copy_(torch.from_numpy(b))
        for mode in ("train", "train", "eval"):
            ours.train(mode == "train")
            ref.train(mode == "train")
            for p in [*ours.parameters()]:
                p.grad = None
            ref.zero_grad()
            x = gen.normal(1.0, 3.0, shape)
            xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            yo, yt = ours(xo), ref(xt)
            g = gen.standard_normal(shape)
            yo.backward(g)
            yt.backward(torch.from_numpy(g))
            numpy.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-9, atol=1e-11)
            for mine, theirs in [(xo.grad, xt.grad), (ours.weight.grad, ref.weight.grad),
                                 (ours.bias.grad, ref.bias.grad)]:
                numpy.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-9, atol=1e-11)
            for name in ("running_mean", "running_var"):
                numpy.testing.assert_allclose(getattr(ours, name), getattr(ref, name).numpy(), rtol=1e-12)
            assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked)


@pytest.mark.parametrize("block_bytes", [None, 4096])
def test_statistics_without_cancellation(monkeypatch, block_bytes):
    """float32 activations with a mean far above their spread (10⁴ ± 1): the shifted
    statistics give what the float64 formula gives, where E[x²] − μ² in float32 would lose
    every digit (μ² ≈ 1e8 has an ulp of 8). Many small blocks (block_bytes) too."""
    from minivae.ops import batchnorm as bn_ops
    if block_bytes:
        monkeypatch.setattr(bn_ops, "CPU_BLOCK_BYTES", block_bytes)
    backend.use("numpy", dtype="float32", seed=0)
    gen = numpy.random.default_rng(5)
    x64 = 1e4 + gen.normal(0.0, [1.0, 0.5, 2.0], size=(64, 8, 8, 3)).transpose(0, 3, 1, 2)
    x = numpy.ascontiguousarray(x64.astype(numpy.float32).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    rm, rv = numpy.zeros(3, numpy.float32), numpy.ones(3, numpy.float32)
    y = batch_norm(Tensor(x), None, None, rm, rv, training=True, momentum=1.0).numpy()
    exact = x.astype(float)
    var = exact.var(axis=(0, 2, 3))
    m = exact.size // 3
    # measured (one block / many): variance 5.7e-6 / 1.7e-6 relative, mean 2.5e-8, y 1e-5 / 3e-6
    # (the two-pass Σx/M then Σ(x − μ)²/M gave 1.5e-4, 1.2e-6 and 1.2e-2: its μ erred by
    # float32's rounding of a sum of 10⁴s); a one-pass E[x²] − μ² would be off by 100 % or more
    numpy.testing.assert_allclose(rv, var * m / (m - 1), rtol=1e-4)
    numpy.testing.assert_allclose(rm, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    expected = (exact - exact.mean(axis=(0, 2, 3))[:, None, None]) / numpy.sqrt(var + 1e-5)[:, None, None]
    numpy.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("shape, channels_last", [((20, 3), False), ((24, 2, 3, 3), False), ((2, 2, 6, 3), True)])
def test_shift_far_from_the_mean(xp, shape, channels_last):
    """The statistics' shift K, the mean of the first SHIFT_ROWS rows (images, or pixels of
    channels-last memory), far from μ: those rows sit 6 above the rest, so δ = μ − K is
    about −σ. The output, the running statistics and the gradients still match the
    float64 formulas and finite differences (every δ term of the op counts here)."""
    from minivae.ops.batchnorm import SHIFT_ROWS
    gen = numpy.random.default_rng(21)
    x = gen.normal(0.5, 1.0, size=shape)
    rows = x.transpose((0,) + tuple(range(2, len(shape))) + (1,)).reshape(-1, shape[1]) if channels_last else x
    assert rows.shape[0] > SHIFT_ROWS
    rows[:SHIFT_ROWS] += 6.0   # a view of x: the leading rows in the op's order
    if channels_last:
        x = numpy.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    shift = rows[:SHIFT_ROWS].mean(axis=(0,) + tuple(range(2, rows.ndim)))
    assert numpy.all(numpy.abs(shift - mean) > numpy.sqrt(var))   # K is far from μ
    c = shape[1]
    w, b = numpy.linspace(0.5, 1.5, c), numpy.linspace(-1.0, 1.0, c)
    rm, rv = backend.to_device(numpy.zeros(c)), backend.to_device(numpy.ones(c))
    xt = Tensor(backend.to_device(x), requires_grad=True)
    y = batch_norm(xt, Tensor(backend.to_device(w)), Tensor(backend.to_device(b)), rm, rv, training=True,
                   momentum=1.0).numpy()
    bshape = (1, c) + (1,) * (len(shape) - 2)
    expected = (x - mean.reshape(bshape)) / numpy.sqrt(var + 1e-5).reshape(bshape) * w.reshape(bshape) + b.reshape(bshape)
    numpy.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    m = x.size // c
    numpy.testing.assert_allclose(backend.to_host(rm), mean, rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(rv), var * m / (m - 1), rtol=1e-12)
    wt, bt = Tensor(backend.to_device(w), requires_grad=True), Tensor(backend.to_device(b), requires_grad=True)
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, None, None, training=True), [xt, wt, bt],
                    mode="directional", n_directions=3)
