"""conv2d / conv_transpose2d: a direct nested-loop reference, the adjoint identity,
float64 gradient checks (incl. non-contiguous inputs), errors, the layers, and PyTorch."""
import numpy
import pytest

from minivae import backend, gradcheck
from minivae.autograd import Tensor
from minivae.nn.conv import Conv2d, ConvTranspose2d
from minivae.ops import conv as conv_ops
from minivae.ops.conv import conv2d, conv_transpose2d

# (kernel, stride, padding) -- square and non-square, overlapping and not, 1x1
GEOMETRIES = [(3, 1, 0), (3, 1, 1), (4, 2, 1), ((2, 3), (2, 1), (1, 0)), (1, 2, 0), (3, 3, 2), ((3, 1), 1, (0, 2))]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _direct_conv2d(x, w, b, stride, padding):
    """Textbook cross-correlation: y[n,o,a,c] = b[o] + Σ w[o,ch,i,j] x̃[n,ch,s·a+i,s·c+j]."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    xp = numpy.zeros((n, cin, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = numpy.zeros((n, cout, oh, ow))
    for s in range(n):
        for o in range(cout):
            for a in range(oh):
                for c in range(ow):
                    patch = xp[s, :, a * sh:a * sh + kh, c * sw:c * sw + kw]
                    y[s, o, a, c] = b[o] + (patch * w[o]).sum()
    return y


def _tensor(a, requires_grad=True):
    return Tensor(backend.to_device(a, numpy.float64), requires_grad=requires_grad)


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES)
def test_conv2d_equals_direct_loop(xp, kernel, stride, padding):
    gen = numpy.random.default_rng(1)
    kh, kw = _pair(kernel)
    x, w, b = gen.standard_normal((2, 3, 7, 6)), gen.standard_normal((4, 3, kh, kw)), gen.standard_normal(4)
    y = conv2d(_tensor(x), _tensor(w), _tensor(b), stride=stride, padding=padding)
    numpy.testing.assert_allclose(y.numpy(), _direct_conv2d(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)


def test_conv2d_without_bias_and_many_channels(xp):
    # 5 input channels x kw 4 >= 16: the channels-last column layout (the other branch)
    gen = numpy.random.default_rng(2)
    x, w = gen.standard_normal((2, 5, 6, 6)), gen.standard_normal((3, 5, 4, 4))
    y = conv2d(_tensor(x), _tensor(w), stride=2, padding=1)
    numpy.testing.assert_allclose(y.numpy(), _direct_conv2d(x, w, numpy.zeros(3), 2, 1), rtol=1e-12, atol=1e-12)


def _output_padding(size, kernel, stride, padding):
    """The output_padding that makes conv_transpose2d restore ``size`` after conv2d."""
    return (size + 2 * padding - kernel) % stride


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES)
@pytest.mark.parametrize("channels", [(3, 4), (8, 5)])
def test_adjoint_identity(xp, kernel, stride, padding, channels):
    """⟨conv2d(x, W), y⟩ = ⟨x, conv_transpose2d(y, W)⟩: the transposed conv is the adjoint."""
    gen = numpy.random.default_rng(3)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    cin, cout = channels
    h, wd = 8, 7
    x, w = gen.standard_normal((2, cin, h, wd)), gen.standard_normal((cout, cin, kh, kw))
    y_conv = conv2d(_tensor(x), _tensor(w), stride=stride, padding=padding)
    y = gen.standard_normal(y_conv.shape)
    op = (_output_padding(h, kh, sh, ph), _output_padding(wd, kw, sw, pw))
    x_back = conv_transpose2d(_tensor(y), _tensor(w), stride=stride, padding=padding, output_padding=op)
    assert x_back.shape == x.shape
    lhs, rhs = float((y_conv.numpy() * y).sum()), float((x * x_back.numpy()).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_conv_transpose2d_output_size_and_bias(xp):
    gen = numpy.random.default_rng(4)
    x, w, b = gen.standard_normal((2, 3, 5, 4)), gen.standard_normal((3, 2, 3, 4)), gen.standard_normal(2)
    y = conv_transpose2d(_tensor(x), _tensor(w), _tensor(b), stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
    # (H−1)·s − 2p + k + output_padding
    assert y.shape == (2, 2, (5 - 1) * 2 - 2 + 3 + 1, (4 - 1) * 3 + 4 + 2)
    y0 = conv_transpose2d(_tensor(x), _tensor(w), stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
    numpy.testing.assert_allclose(y.numpy() - y0.numpy(), numpy.broadcast_to(b[None, :, None, None], y.shape),
                                  atol=1e-12)
    # a single input pixel stamps the kernel: the rows beyond it (output_padding) stay at zero
    x1 = numpy.zeros((1, 3, 5, 4))
    x1[0, :, 4, 3] = [1.0, 0.0, 0.0]
    y1 = conv_transpose2d(_tensor(x1), _tensor(w), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)).numpy()
    numpy.testing.assert_allclose(y1[0, :, 7:10, 9:13], w[0], atol=1e-12)
    assert numpy.count_nonzero(y1) == numpy.count_nonzero(w[0])


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES[1:5])
def test_conv2d_gradcheck(xp, kernel, stride, padding):
    kh, kw = _pair(kernel)
    x = gradcheck.random_input((2, 3, 6, 5), seed=5)
    w, b = gradcheck.random_input((2, 3, kh, kw), seed=6), gradcheck.random_input((2,), seed=7)
    gradcheck.check(lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding), [x, w, b],
                    mode="directional", n_directions=3)


@pytest.mark.parametrize("kernel,stride,padding,output_padding",
                         [(3, 1, 1, 0), (4, 2, 1, 1), ((2, 3), (2, 1), (1, 0), (1, 0)), (3, 3, 0, 2)])
def test_conv_transpose2d_gradcheck(xp, kernel, stride, padding, output_padding):
    kh, kw = _pair(kernel)
    x = gradcheck.random_input((2, 3, 4, 5), seed=8)
    w, b = gradcheck.random_input((3, 2, kh, kw), seed=9), gradcheck.random_input((2,), seed=10)
    gradcheck.check(lambda x, w, b: conv_transpose2d(x, w, b, stride=stride, padding=padding,
                                                     output_padding=output_padding),
                    [x, w, b], mode="directional", n_directions=3)


def test_full_jacobian_on_a_tiny_conv(xp):
    """Every element of dx, dW, db (and a few Jacobian rows) on an input small enough."""
    x = gradcheck.random_input((1, 2, 4, 3), seed=11)
    w, b = gradcheck.random_input((2, 2, 2, 2), seed=12), gradcheck.random_input((2,), seed=13)
    gradcheck.check(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=(1, 0)), [x, w, b], mode="full")
    wt = gradcheck.random_input((2, 1, 3, 2), seed=14)
    gradcheck.check(lambda x, w: conv_transpose2d(x, w, stride=2, padding=1, output_padding=1), [x, wt],
                    mode="full")


def _non_contiguous(shape, seed):
    """A (N, C, H, W) tensor that is a transposed, strided slice of a bigger array."""
    n, c, h, w = shape
    base = gradcheck.random_input((n, w * 2, c, h + 1), requires_grad=False, seed=seed).data
    view = base.transpose(0, 2, 3, 1)[:, :, 1:, ::2]
    assert view.shape == shape and not view.flags.c_contiguous
    return Tensor(view, requires_grad=True)


def test_non_contiguous_inputs(xp):
    x = _non_contiguous((2, 3, 5, 6), seed=15)
    w, b = gradcheck.random_input((4, 3, 3, 2), seed=16), gradcheck.random_input((4,), seed=17)
    expected = _direct_conv2d(x.numpy(), w.numpy(), b.numpy(), (2, 1), 1)
    numpy.testing.assert_allclose(conv2d(x, w, b, stride=(2, 1), padding=1).numpy(), expected, atol=1e-12)
    gradcheck.check(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=1), [x, w, b],
                    mode="directional", n_directions=3)
    # no padding: im2col reads the caller's strided array directly
    numpy.testing.assert_allclose(conv2d(x, w, b).numpy(), _direct_conv2d(x.numpy(), w.numpy(), b.numpy(), 1, 0),
                                  atol=1e-12)
    wt = gradcheck.random_input((3, 2, 3, 3), seed=18)
    gradcheck.check(lambda x, w, b: conv_transpose2d(x, w, b[:2], stride=2, padding=1, output_padding=1),
                    [x, wt, b], mode="directional", n_directions=3)
    # weights given as a non-contiguous view too
    w_view = Tensor(w.data.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3), requires_grad=True)
    gradcheck.check(lambda x, w: conv2d(x, w, stride=2), [x, w_view], mode="directional")


def test_flipped_input_and_broadcast_gradient(xp):
    """Negative strides (a flipped view) and a zero-stride upstream gradient (from sum())."""
    x = gradcheck.random_input((2, 3, 6, 5), seed=22)
    w = gradcheck.random_input((3, 4, 3, 3), seed=23)
    flipped = Tensor(x.data[:, :, ::-1, ::-1], requires_grad=True)
    for padding in (0, 1):
        expected = _direct_conv2d(flipped.numpy(), w.numpy().transpose(1, 0, 2, 3), numpy.zeros(4), 1, padding)
        numpy.testing.assert_allclose(conv2d(flipped, Tensor(w.data.transpose(1, 0, 2, 3)), padding=padding).numpy(),
                                      expected, atol=1e-12)
    for op, args in [(conv2d, dict(stride=2, padding=1)), (conv_transpose2d, dict(stride=2))]:
        weight = Tensor(w.data.transpose(1, 0, 2, 3).copy(), requires_grad=True) if op is conv2d else w
        y = op(x, weight, **args)
        y.sum().backward()   # the sum's vjp hands back a broadcast (zero-stride) array
        gx, gw = x.grad.copy(), weight.grad.copy()
        x.grad = weight.grad = None
        op(x, weight, **args).backward(backend.xp().ones(y.shape))
        numpy.testing.assert_allclose(backend.to_host(gx), backend.to_host(x.grad), atol=1e-12)
        numpy.testing.assert_allclose(backend.to_host(gw), backend.to_host(weight.grad), atol=1e-12)
        x.grad = None


def test_encoder_decoder_chain_gradcheck(xp):
    """conv → ReLU → reshape → matmul → reshape → transposed conv: channels-last outputs
    flow through the other ops (and their gradients back) correctly."""
    from minivae import ops
    x = gradcheck.random_input((2, 1, 8, 8), seed=24)
    w1, b1 = gradcheck.random_input((3, 1, 4, 4), seed=25), gradcheck.random_input((3,), seed=26)
    w2 = gradcheck.random_input((3, 2, 4, 4), seed=27)
    lin = gradcheck.random_input((48, 48), seed=28)

    def chain(x, w1, b1, w2, lin):
        h = ops.relu(conv2d(x, w1, b1, stride=2, padding=1))          # (2, 3, 4, 4), channels-last
        z = ops.reshape(ops.matmul(ops.reshape(h, (2, 48)), lin), (2, 3, 4, 4))
        return conv_transpose2d(ops.relu(z) + h, w2, stride=2, padding=1)

    assert chain(x, w1, b1, w2, lin).shape == (2, 2, 8, 8)
    gradcheck.check(chain, [x, w1, b1, w2, lin], mode="directional", n_directions=3)


@pytest.mark.parametrize("transposed", [False, True])
def test_batch_chunks_give_the_same_result(xp, monkeypatch, transposed):
    """Cache blocking (one image per chunk here) changes nothing but the speed."""
    x = gradcheck.random_input((5, 3, 7, 6), seed=29)
    w = gradcheck.random_input((3, 4, 3, 2) if transposed else (4, 3, 3, 2), seed=30)
    b = gradcheck.random_input((4,), seed=31)
    op = conv_transpose2d if transposed else conv2d
    kwargs = dict(stride=(2, 1), padding=1, **({"output_padding": (1, 0)} if transposed else {}))
    results, default = [], conv_ops.CPU_CHUNK_BYTES
    for chunk_bytes in (default, 1):
        monkeypatch.setattr(conv_ops, "CPU_CHUNK_BYTES", chunk_bytes)
        for t in (x, w, b):
            t.grad = None
        y = op(x, w, b, **kwargs)
        y.backward(backend.to_device(numpy.random.default_rng(32).standard_normal(y.shape)))
        results.append([y.numpy()] + [backend.to_host(t.grad) for t in (x, w, b)])
    for single, chunked in zip(*results):
        numpy.testing.assert_allclose(chunked, single, rtol=1e-12, atol=1e-12)
    gradcheck.check(lambda x, w, b: op(x, w, b, **kwargs), [x, w, b], mode="directional", n_directions=2)
    assert len(conv_ops._batch_chunks(numpy, 5, 10)) == 5
    monkeypatch.setattr(conv_ops, "CPU_CHUNK_BYTES", default)
    assert [(c.start, c.stop) for c in conv_ops._batch_chunks(numpy, 10, default // 3)] == [(0, 2), (2, 5), (5, 7), (7, 10)]


def test_float32_stays_float32():
    gen = numpy.random.default_rng(19)
    x = Tensor(gen.standard_normal((2, 3, 8, 8)).astype(numpy.float32), requires_grad=True)
    w = Tensor(gen.standard_normal((4, 3, 4, 4)).astype(numpy.float32), requires_grad=True)
    b = Tensor(numpy.zeros(4, numpy.float32), requires_grad=True)
    y = conv2d(x, w, b, stride=2, padding=1)
    z = conv_transpose2d(y, w, stride=2, padding=1)
    z.backward(numpy.ones(z.shape, numpy.float32))
    assert y.dtype == z.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == numpy.float32


def test_shape_errors_name_the_op_and_shapes():
    x = Tensor(numpy.zeros((2, 3, 5, 5), numpy.float32))
    with pytest.raises(ValueError, match=r"conv2d.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        conv2d(x, Tensor(numpy.zeros((4, 2, 3, 3), numpy.float32)))
    with pytest.raises(ValueError, match=r"conv2d.*\(2, 3, 5, 5\).*smaller than the kernel.*\(4, 3, 6, 6\)"):
        conv2d(x, Tensor(numpy.zeros((4, 3, 6, 6), numpy.float32)))
    with pytest.raises(ValueError, match=r"conv_transpose2d.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        conv_transpose2d(x, Tensor(numpy.zeros((4, 2, 3, 3), numpy.float32)))
    with pytest.raises(ValueError, match=r"conv2d.*4-D"):
        conv2d(Tensor(numpy.zeros((3, 5, 5), numpy.float32)), Tensor(numpy.zeros((4, 3, 3, 3), numpy.float32)))
    with pytest.raises(ValueError, match=r"conv2d: stride"):
        conv2d(x, Tensor(numpy.zeros((4, 3, 3, 3), numpy.float32)), stride=0)
    with pytest.raises(ValueError, match=r"output_padding"):
        conv_transpose2d(x, Tensor(numpy.zeros((3, 2, 3, 3), numpy.float32)), stride=2, output_padding=2)
    with pytest.raises(TypeError, match="dtype"):
        conv2d(x, Tensor(numpy.zeros((4, 3, 3, 3), numpy.float64)))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8\).*\(2, 4, 5, 5\)"):
        Conv2d(3, 8, 3)(Tensor(numpy.zeros((2, 4, 5, 5), numpy.float32)))


def test_layer_shapes_and_pytorch_default_init():
    conv = Conv2d(3, 8, (4, 2), stride=2, padding=1)
    assert conv.weight.shape == (8, 3, 4, 2) and conv.bias.shape == (8,)
    bound = 1 / numpy.sqrt(3 * 4 * 2)
    assert numpy.abs(conv.weight.numpy()).max() <= bound and numpy.abs(conv.weight.numpy()).max() > 0.8 * bound
    tconv = ConvTranspose2d(16, 2, 4, stride=2, padding=1, output_padding=1, bias=False)
    assert tconv.weight.shape == (16, 2, 4, 4) and tconv.bias is None
    bound = 1 / numpy.sqrt(2 * 4 * 4)   # PyTorch: fan_in from weight.shape[1]·kh·kw
    assert bound * 0.8 < numpy.abs(tconv.weight.numpy()).max() <= bound
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert tconv(Tensor(numpy.zeros((1, 16, 7, 7), numpy.float32))).shape == (1, 2, 15, 15)


def test_layers_gradcheck(xp):
    for layer, shape in [(Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1), (2, 2, 5, 4)),
                         (ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 3, 4))]:
        gradcheck.check_module(layer, gradcheck.random_input(shape, seed=20), mode="directional", n_directions=3)


@pytest.mark.torch
def test_against_pytorch():
    torch = pytest.importorskip("torch")
    backend.use("numpy", dtype="float64", seed=0)
    gen = numpy.random.default_rng(21)
    cases = [(Conv2d(3, 5, (4, 3), stride=(2, 1), padding=(1, 2)),
              torch.nn.Conv2d(3, 5, (4, 3), stride=(2, 1), padding=(1, 2)), (4, 3, 9, 8)),
             (ConvTranspose2d(5, 2, 4, stride=2, padding=1, output_padding=1),
              torch.nn.ConvTranspose2d(5, 2, 4, stride=2, padding=1, output_padding=1), (4, 5, 5, 6))]
    for ours, ref, shape in cases:
        ref = ref.double()
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(ours.weight.numpy()))
            ref.bias.copy_(torch.from_numpy(ours.bias.numpy()))
        x = gen.standard_normal(shape)
        xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), ref(xt)
        g = gen.standard_normal(yt.shape)
        yo.backward(g)
        yt.backward(torch.from_numpy(g))
        numpy.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        for mine, theirs in [(xo.grad, xt.grad), (ours.weight.grad, ref.weight.grad), (ours.bias.grad, ref.bias.grad)]:
            numpy.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)
