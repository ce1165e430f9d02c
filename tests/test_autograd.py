"""The graph itself: accumulation on fan-out, deep graphs, no_grad, detach, errors."""
import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck, no_grad, ops


def test_fan_out_accumulates(xp):
    x = Tensor(xp.asarray([1.5, -2.0, 3.0]), requires_grad=True)
    (x * x + x).sum().backward()  # d/dx (x² + x) = 2x + 1
    assert np.allclose(backend.to_host(x.grad), 2 * x.numpy() + 1)
    gradcheck.check(lambda t: t * t + t, [gradcheck.random_input((4,))])


def test_one_tensor_feeding_two_losses(xp):
    """μ in a VAE feeds the KL and the reparameterisation: both gradients must add."""
    mu = Tensor(xp.asarray([0.3, -0.7]), requires_grad=True)
    eps = xp.asarray([0.5, 2.0])
    kl = (mu * mu).sum() * 0.5
    rec = ((mu + Tensor(eps)) ** 2).sum()
    (kl + rec).backward()
    assert np.allclose(backend.to_host(mu.grad), mu.numpy() + 2 * (mu.numpy() + backend.to_host(eps)))


def test_gradients_accumulate_across_backward_calls(xp):
    x = Tensor(xp.asarray([2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    assert np.allclose(backend.to_host(x.grad), [7.0])


def test_deep_graph_has_no_recursion_limit(xp):
    x = Tensor(xp.asarray([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert np.isclose(float(x.grad[0]), 1.0001 ** 5000)


def test_no_grad_and_detach(xp):
    x = Tensor(xp.asarray([1.0, 2.0]), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    z = (x * x.detach()).sum()  # stop-gradient: d/dx = sg(x)
    z.backward()
    assert np.allclose(backend.to_host(x.grad), x.numpy())


def test_backward_on_non_scalar_needs_gradient(xp):
    x = Tensor(xp.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-scalar tensor of shape"):
        (x * 2).backward()
    (x * 2).backward(xp.full((2, 2), 3.0))
    assert np.allclose(backend.to_host(x.grad), 6.0)


def test_backward_without_graph_is_refused(xp):
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(xp.ones(2)).sum().backward()


def test_shape_errors_name_the_op_and_shapes(xp):
    a, b = Tensor(xp.ones((2, 3))), Tensor(xp.ones((4, 5)))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        a @ b
    with pytest.raises(ValueError, match=r"reshape: cannot reshape"):
        ops.reshape(a, (4, 2))


def test_dtype_mixes_are_refused_scalars_are_cast(xp):
    a = Tensor(xp.ones(2, dtype=xp.float32))
    b = Tensor(xp.ones(2, dtype=xp.float64))
    with pytest.raises(TypeError, match="different dtypes"):
        a * b
    assert (a * 2.5).dtype == np.float32 and (2.5 * a).dtype == np.float32


def test_integer_data_becomes_float(xp):
    assert Tensor(xp.arange(3)).dtype.kind == "f"
