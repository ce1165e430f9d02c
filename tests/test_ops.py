"""Float64 finite-difference checks of every elementwise, reduction, shape and
activation op, including broadcasting, non-contiguous inputs and fan-out."""
import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck, ops
from minivae.gradcheck import random_input


def rand(shape, **kw):
    return random_input(shape, **kw)


BINARY = [ops.add, ops.sub, ops.mul, ops.div]


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3, 4), ())])
def test_binary_ops_with_broadcasting(xp, op, shapes):
    a = rand(shapes[0])
    b = rand(shapes[1], low=0.5, high=1.5)  # keep the divisor away from 0
    gradcheck.check(op, [a, b])


def test_binary_ops_values(xp):
    a, b = Tensor(xp.asarray([1.0, 2.0])), Tensor(xp.asarray([4.0, 8.0]))
    assert np.allclose((a + b).numpy(), [5, 10]) and np.allclose((a - b).numpy(), [-3, -6])
    assert np.allclose((a * b).numpy(), [4, 16]) and np.allclose((a / b).numpy(), [0.25, 0.25])
    assert np.allclose((2.0 - a).numpy(), [1, 0]) and np.allclose((1.0 / b).numpy(), [0.25, 0.125])


@pytest.mark.parametrize("name,fn,low,high", [
    ("exp", ops.exp, -2, 2), ("log", ops.log, 0.2, 3), ("sqrt", ops.sqrt, 0.2, 3),
    ("neg", ops.neg, -1, 1), ("square", ops.square, -2, 2), ("pow3", lambda x: x ** 3, -2, 2),
    ("pow_half", lambda x: x ** 0.5, 0.2, 2), ("abs", ops.abs, -2, 2),
    ("clip", lambda x: ops.clip(x, -0.5, 0.5), -1, 1),
    ("sigmoid", ops.sigmoid, -30, 30), ("tanh", ops.tanh, -3, 3), ("softplus", ops.softplus, -30, 30),
    ("log_sigmoid", ops.log_sigmoid, -30, 30), ("relu", ops.relu, -1, 1),
    ("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), -1, 1), ("elu", ops.elu, -2, 2),
])
def test_unary_ops(xp, name, fn, low, high):
    kinks = (-0.5, 0.5) if name == "clip" else (0.0,)
    x = rand((3, 5), low=low, high=high, kinks=kinks)
    gradcheck.check(fn, [x])


def test_activation_values_are_stable_far_out(xp):
    x = Tensor(xp.asarray([-800.0, -30.0, 0.0, 30.0, 800.0]))
    assert np.all(np.isfinite(ops.softplus(x).numpy()))
    assert np.allclose(ops.softplus(x).numpy(), np.logaddexp(0, x.numpy()))
    assert np.allclose(ops.log_sigmoid(x).numpy(), -np.logaddexp(0, -x.numpy()))
    assert np.allclose(ops.sigmoid(x).numpy(), [0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max, ops.logsumexp], ids=lambda f: f.__name__)
def test_reductions(xp, op, axis, keepdims):
    x = rand((2, 3, 4))
    gradcheck.check(lambda t: op(t, axis=axis, keepdims=keepdims), [x])


def test_reduction_values(xp):
    x = xp.arange(6.0).reshape(2, 3)
    t = Tensor(x)
    assert np.allclose(ops.sum(t, axis=1).numpy(), [3, 12])
    assert np.allclose(ops.mean(t, axis=0).numpy(), [1.5, 2.5, 3.5])
    assert np.allclose(ops.max(t, axis=1).numpy(), [2, 5])
    expected = np.log(np.exp(np.arange(6.0).reshape(2, 3)).sum(1))
    assert np.allclose(ops.logsumexp(t, axis=1).numpy(), expected)
    big = Tensor(xp.asarray([1000.0, 1000.0]))
    assert np.isclose(ops.logsumexp(big).item(), 1000 + np.log(2))


def test_max_splits_gradient_between_ties(xp):
    x = Tensor(xp.asarray([1.0, 3.0, 3.0]), requires_grad=True)
    ops.max(x).backward()
    assert np.allclose(backend.to_host(x.grad), [0, 0.5, 0.5])


def test_matmul_and_linear(xp):
    a, b = rand((3, 4)), rand((4, 5))
    gradcheck.check(ops.matmul, [a, b])
    gradcheck.check(ops.matmul, [rand((2, 3, 4)), rand((4, 2))])  # batch broadcasting
    gradcheck.check(ops.matmul, [rand((4,)), rand((4, 3))])  # vector @ matrix
    x, w, bias = rand((6, 4)), rand((3, 4)), rand((3,))
    gradcheck.check(ops.linear, [x, w, bias])
    assert np.allclose(ops.linear(x, w, bias).numpy(), x.numpy() @ w.numpy().T + bias.numpy())


def test_shape_ops(xp):
    x = rand((2, 3, 4))
    gradcheck.check(lambda t: ops.reshape(t, (6, 4)), [x])
    gradcheck.check(lambda t: ops.transpose(t, (2, 0, 1)), [x])
    gradcheck.check(lambda t: t[:, 1:, ::2], [x])
    gradcheck.check(lambda t: t[xp.asarray([0, 1, 1]), 2], [x])  # advanced index, repeated rows add
    gradcheck.check(lambda a, b: ops.concatenate([a, b], axis=1), [x, rand((2, 1, 4))])
    gradcheck.check(lambda t: ops.flatten(t), [x])


def test_where(xp):
    a, b = rand((3, 4)), rand((4,))
    cond = xp.asarray(np.random.default_rng(1).random((3, 4)) > 0.5)
    gradcheck.check(lambda a, b: ops.where(cond, a, b), [a, b])


def test_non_contiguous_inputs(xp):
    base = rand((5, 4))
    transposed = Tensor(base.data.T, requires_grad=True)  # a strided view
    assert not transposed.data.flags.c_contiguous
    gradcheck.check(lambda t: ops.tanh(ops.matmul(t, t.T)).sum(axis=0), [transposed])
    sliced = Tensor(base.data[::2, 1:], requires_grad=True)
    gradcheck.check(lambda t: ops.softplus(t) * t, [sliced])


def test_relu_values_and_subgradient_at_zero(xp):
    """ReLU(x) = max(x, 0), its vjp g·[x > 0]: the subgradient at 0 is 0 (PyTorch's choice),
    also on the batch-parts path (an array above the parallel threshold)."""
    from minivae.ops import _parallel
    x = np.array([[-1.0, 0.0, 2.0, -0.0]])
    for rows in (1, _parallel.MIN_PARALLEL_BYTES // x.nbytes + 1):
        a = np.repeat(x, rows, axis=0)
        t = Tensor(backend.to_device(a), requires_grad=True)
        y = ops.relu(t)
        y.backward(backend.to_device(np.ones_like(a)))
        np.testing.assert_array_equal(np.abs(y.numpy()), np.maximum(a, 0))
        np.testing.assert_array_equal(backend.to_host(t.grad), (a > 0).astype(float))
