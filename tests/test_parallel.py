"""The CPU batch parts (minivae.ops._parallel) of the convolutions and of BatchNorm: the parts
cover the batch, P worker threads give the numbers of one part (and of a direct loop or the
equations), gradient checks and the adjoint identity hold on the threaded, chunked/blocked
paths, the layouts handed out, the dense layers' row split (matmul) and the malloc setting."""
import os
import platform

import numpy
import pytest

from minivae import backend, gradcheck
from minivae.autograd import Tensor
from minivae.ops import _parallel
from minivae.ops import batchnorm as bn_ops
from minivae.ops import conv as conv_ops
from minivae.ops.batchnorm import batch_norm
from minivae.ops.conv import conv2d, conv_transpose2d
from minivae.ops.linalg import linear

from test_conv import _direct_conv2d  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture
def workers(monkeypatch):
    """Force ``k`` batch parts on worker threads (whatever the core count and the BLAS)."""
    pools = []

    def force(k):
        state = {"workers": k, "setter": (lambda threads: 0)}
        monkeypatch.setattr(_parallel, "_STATE", state)
        monkeypatch.setattr(_parallel, "MIN_PARALLEL_BYTES", 0)   # tiny test arrays too
        pools.append(state)
    yield force
    for state in pools:
        if "pool" in state:
            state["pool"].shutdown()


def test_parts_cover_the_batch(workers):
    workers(3)
    for n in (1, 2, 3, 7, 128):
        slices = _parallel.parts(numpy, n)
        assert len(slices) == min(n, 3)
        assert slices[0].start == 0 and slices[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
        assert max(s.stop - s.start for s in slices) - min(s.stop - s.start for s in slices) <= 1

    class OtherModule:   # CuPy or any other array module: one part, the device parallelises
        __name__ = "cupy"
    assert _parallel.parts(OtherModule(), 128) == [slice(0, 128)]
    one_image_chunks = conv_ops._plan(numpy, 7, conv_ops.CPU_CHUNK_BYTES)
    assert one_image_chunks == [[slice(0, 1), slice(1, 2)], [slice(2, 3), slice(3, 4)],
                                [slice(4, 5), slice(5, 6), slice(6, 7)]]
    assert conv_ops._plan(numpy, 7, 1) == [[slice(0, 2)], [slice(2, 4)], [slice(4, 7)]]


def test_small_ops_run_as_one_part(workers):
    workers(2)
    _parallel.MIN_PARALLEL_BYTES = 1 << 20   # the fixture's monkeypatch restores it
    assert _parallel.parts(numpy, 128, nbytes=1000) == [slice(0, 128)]
    assert len(_parallel.parts(numpy, 128, nbytes=2 << 20)) == 2


def test_a_forked_child_starts_its_own_pool(workers):
    workers(2)
    assert _parallel.map_parts(lambda s: s.stop - s.start, _parallel.parts(numpy, 10)) == [5, 5]
    pool = _parallel._STATE["pool"]
    _parallel._forget_pool_after_fork()   # what os.register_at_fork runs in a child
    assert "pool" not in _parallel._STATE
    assert _parallel.map_parts(lambda s: s.start, _parallel.parts(numpy, 10)) == [0, 5]
    assert _parallel._STATE["pool"] is not pool
    pool.shutdown()


def test_one_worker_without_the_capability(monkeypatch):
    monkeypatch.setattr(_parallel, "_STATE", {})
    monkeypatch.setenv("MINIVAE_CPU_THREADS", "1")
    assert _parallel.cpu_workers() == 1
    assert _parallel.parts(numpy, 64) == [slice(0, 64)]
    monkeypatch.setattr(_parallel, "_STATE", {})
    monkeypatch.setenv("MINIVAE_CPU_THREADS", "4")
    monkeypatch.setattr(_parallel, "_openblas_local_setter", lambda: None)   # e.g. MKL or macOS
    assert _parallel.cpu_workers() == 1


def _run(op, x, w, b, g, **kwargs):
    for t in (x, w, b):
        t.grad = None
    y = op(x, w, b, **kwargs)
    y.backward(backend.to_device(g))
    return [y.numpy()] + [backend.to_host(t.grad) for t in (x, w, b)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_parts_give_the_numbers_of_one_part(workers, monkeypatch, transposed, chunk_bytes):
    backend.use("numpy", dtype="float64", seed=0)
    if chunk_bytes:
        monkeypatch.setattr(conv_ops, "CPU_CHUNK_BYTES", chunk_bytes)   # one image per chunk
    x = gradcheck.random_input((7, 5, 6, 5), seed=40)
    w = gradcheck.random_input((5, 4, 4, 3) if transposed else (4, 5, 4, 3), seed=41)
    b = gradcheck.random_input((4,), seed=42)
    op = conv_transpose2d if transposed else conv2d
    kwargs = dict(stride=2, padding=1, **({"output_padding": 1} if transposed else {}))
    g = numpy.random.default_rng(43).standard_normal(op(x, w, b, **kwargs).shape)
    results = []
    for k in (1, 3):
        workers(k)
        results.append(_run(op, x, w, b, g, **kwargs))
    for one, three in zip(*results):
        numpy.testing.assert_allclose(three, one, rtol=1e-12, atol=1e-12)
    if not transposed:   # and both are the textbook sum
        expected = _direct_conv2d(x.numpy(), w.numpy(), b.numpy(), 2, 1)
        numpy.testing.assert_allclose(results[1][0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding", [(4, 2, 1), (3, 1, 1), ((2, 3), (2, 1), (1, 0))])
def test_gradcheck_and_adjoint_on_threaded_chunks(workers, monkeypatch, kernel, stride, padding):
    backend.use("numpy", dtype="float64", seed=0)
    workers(2)
    monkeypatch.setattr(conv_ops, "CPU_CHUNK_BYTES", 1)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = gradcheck.random_input((5, 3, 8, 7), seed=44)
    w, b = gradcheck.random_input((4, 3, kh, kw), seed=45), gradcheck.random_input((4,), seed=46)
    gradcheck.check(lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding), [x, w, b],
                    mode="directional", n_directions=2)
    y_conv = conv2d(x, w, stride=stride, padding=padding)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    op = ((8 + 2 * ph - kh) % sh, (7 + 2 * pw - kw) % sw)
    y = gradcheck.random_input(y_conv.shape, seed=47)
    gradcheck.check(lambda y, w, b: conv_transpose2d(y, w, b[:3], stride=stride, padding=padding, output_padding=op),
                    [y, w, b], mode="directional", n_directions=2)
    x_back = conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=op)
    lhs, rhs = float((y_conv.numpy() * y.numpy()).sum()), float((x.numpy() * x_back.numpy()).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_outputs_and_input_gradients_are_channels_last(workers):
    """Every conv/transposed-conv result and input gradient is channels-last memory, so the
    next layer (BatchNorm, an activation, another conv) reads it without a transposing copy."""
    workers(2)
    x = Tensor(numpy.random.default_rng(48).standard_normal((4, 3, 8, 8)).astype(numpy.float32),
               requires_grad=True)
    w = Tensor(numpy.random.default_rng(49).standard_normal((5, 3, 4, 4)).astype(numpy.float32),
               requires_grad=True)
    for op in (conv2d, conv_transpose2d):
        weight = w if op is conv2d else Tensor(w.data.transpose(1, 0, 2, 3), requires_grad=True)
        x.grad = None
        y = op(x, weight, stride=2, padding=1)
        assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
        y.backward(numpy.ones(y.shape, numpy.float32))
        assert x.grad.shape == x.shape
    # the input gradient itself (before accumulation into .grad) is channels-last too
    fn = conv2d(x, w, stride=2, padding=1)._fn
    gx = fn.backward(numpy.ones((4, 5, 4, 4), numpy.float32))[0]
    assert gx.transpose(0, 2, 3, 1).flags.c_contiguous


def _channels_last(a):
    axes = (0,) + tuple(range(2, a.ndim)) + (1,)
    back = (0, a.ndim - 1) + tuple(range(1, a.ndim - 1))
    return numpy.ascontiguousarray(a.transpose(axes)).transpose(back)


@pytest.mark.parametrize("shape,last", [((9, 3), False), ((5, 3, 4, 3), False), ((5, 3, 4, 3), True)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_parts_and_blocks(workers, monkeypatch, shape, last, training):
    """Parts on threads and one-row blocks give the equations' numbers and exact gradients."""
    backend.use("numpy", dtype="float64", seed=0)
    monkeypatch.setattr(bn_ops, "CPU_BLOCK_BYTES", 1)
    gen = numpy.random.default_rng(50)
    c = shape[1]
    x = gen.normal(1.5, 2.0, size=shape)
    x = _channels_last(x) if last else x
    w, b = gen.uniform(0.5, 2.0, c), gen.standard_normal(c)
    rm, rv = gen.standard_normal(c), gen.uniform(0.5, 2.0, c)
    g = gen.standard_normal(shape)
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, c) + (1,) * (len(shape) - 2)
    mean, var = (x.mean(axes), x.var(axes)) if training else (rm, rv)
    xhat = (x - mean.reshape(bshape)) / numpy.sqrt(var.reshape(bshape) + 1e-5)
    expected_y = xhat * w.reshape(bshape) + b.reshape(bshape)
    scale = (w / numpy.sqrt(var + 1e-5)).reshape(bshape)
    expected_gx = scale * (g - g.mean(axes).reshape(bshape) - xhat * (g * xhat).mean(axes).reshape(bshape)) \
        if training else scale * g
    for k in (1, 3):
        workers(k)
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = batch_norm(xt, wt, bt, rm.copy(), rv.copy(), training=training)
        y.backward(g)
        numpy.testing.assert_allclose(y.numpy(), expected_y, rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(xt.grad, expected_gx, rtol=1e-10, atol=1e-12)
        numpy.testing.assert_allclose(wt.grad, (g * xhat).sum(axes), rtol=1e-10, atol=1e-12)
        numpy.testing.assert_allclose(bt.grad, g.sum(axes), rtol=1e-12, atol=1e-12)
    xg = gradcheck.random_input(shape, seed=51)
    xg = Tensor(_channels_last(xg.data), requires_grad=True) if last else xg
    wg, bg = gradcheck.random_input((c,), seed=52, low=0.5, high=2), gradcheck.random_input((c,), seed=53)
    gradcheck.check(lambda x, w, b: batch_norm(x, w, b, None if training else rm, None if training else rv,
                                               training=training), [xg, wg, bg], mode="directional", n_directions=2)


def test_optimiser_threads_follow_the_setting(monkeypatch):
    """MINIVAE_CPU_THREADS sets the optimiser's threads too; Adam is elementwise, so any
    number of threads gives the same parameters bit for bit."""
    from minivae.optim import Adam, optimizer
    monkeypatch.setattr(optimizer, "CPU_BLOCK", 1000)   # several blocks for the threads to share
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("MINIVAE_CPU_THREADS", threads)
        assert optimizer._cpu_workers() == int(threads)
        gen = numpy.random.default_rng(60)
        p = Tensor(gen.standard_normal(10_000).astype(numpy.float32), requires_grad=True)
        opt = Adam([p], lr=0.1)
        for _ in range(3):
            p.grad = gen.standard_normal(10_000).astype(numpy.float32)
            opt.step()
        results.append(p.numpy().copy())
    assert numpy.array_equal(results[0], results[1])
    assert not numpy.array_equal(results[0], numpy.random.default_rng(60).standard_normal(10_000).astype(numpy.float32))


# ------------------------------------------------------------------ dense rows over the workers

@pytest.mark.parametrize("m", [67, 64, 129])
def test_parallel_matmul_equals_numpy(workers, monkeypatch, m):
    workers(3)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_MACS", 1)
    calls = []
    real = _parallel.map_parts
    monkeypatch.setattr(_parallel, "map_parts", lambda work, slices: calls.append(len(slices)) or real(work, slices))
    gen = numpy.random.default_rng(21)
    a, b = gen.standard_normal((m, 9)), gen.standard_normal((9, 5))
    numpy.testing.assert_allclose(_parallel.matmul(numpy, a, b), a @ b, rtol=1e-12, atol=1e-12)
    at = numpy.asfortranarray(a)   # another layout, and the transposed view Linear's dW uses
    numpy.testing.assert_allclose(_parallel.matmul(numpy, at, b), a @ b, rtol=1e-12, atol=1e-12)
    g = gen.standard_normal((9, m))
    numpy.testing.assert_allclose(_parallel.matmul(numpy, g.T, b), g.T @ b, rtol=1e-12, atol=1e-12)
    assert calls == [3, 3, 3]
    # below the row threshold: one plain product
    small = a[:_parallel.MIN_PARALLEL_ROWS - 1]
    numpy.testing.assert_allclose(_parallel.matmul(numpy, small, b), small @ b, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_MACS", 1 << 26)   # and below the work threshold
    numpy.testing.assert_allclose(_parallel.matmul(numpy, a, b), a @ b, rtol=1e-12, atol=1e-12)
    assert calls == [3, 3, 3]
    assert _parallel.matmul(numpy, a.astype(numpy.float32), b.astype(numpy.float32)).dtype == numpy.float32


def test_linear_on_threaded_rows_gradcheck(workers, monkeypatch):
    backend.use("numpy", dtype="float64", seed=0)
    workers(2)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_MACS", 1)
    x, w, b = (gradcheck.random_input(s, seed=22 + i) for i, s in enumerate([(65, 7), (3, 7), (3,)]))
    numpy.testing.assert_allclose(linear(x, w, b).numpy(), x.numpy() @ w.numpy().T + b.numpy(),
                                  rtol=1e-12, atol=1e-12)
    gradcheck.check(lambda x, w, b: linear(x, w, b), [x, w, b], mode="directional", n_directions=2)


def test_keep_freed_memory_leaves_user_malloc_settings_alone(monkeypatch):
    for name in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "2" if name.startswith("MALLOC") else "glibc.malloc.arena_max=2")
        assert _parallel._keep_freed_memory() is False
        monkeypatch.delenv(name)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_on_glibc(monkeypatch):
    for name in [k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(name)
    assert _parallel._keep_freed_memory() is True


def test_reshape_copies_in_parts(workers):
    """Flattening a channels-last activation (a copy) runs per batch part and equals NumPy's
    reshape; its vjp reshapes back; a contiguous array is still a view (float64 gradcheck)."""
    from minivae.ops import reshape
    workers(3)
    gen = numpy.random.default_rng(4)
    x = numpy.ascontiguousarray(gen.standard_normal((7, 3, 4, 5)).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous
    for shape in [(7, -1), (7, 60), (7, 12, 5)]:
        y = reshape(Tensor(x), shape)
        numpy.testing.assert_array_equal(y.numpy(), x.reshape(shape))
        assert y.numpy().flags.c_contiguous
    flat = numpy.ones((7, 60))
    assert numpy.shares_memory(reshape(Tensor(flat), (7, 3, 4, 5)).data, flat)
    with pytest.raises(ValueError, match="cannot reshape a tensor of shape"):
        reshape(Tensor(x), (7, 61))
    xt = Tensor(x, requires_grad=True)   # channels-last memory: the parts path
    gradcheck.check(lambda t: reshape(t, (7, -1)) * Tensor(numpy.arange(60.0)), [xt], mode="directional",
                    n_directions=2)
