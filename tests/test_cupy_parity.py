"""CPU/GPU parity: the same computation on NumPy and on CuPy gives the same numbers.

On a GPU (ids ``[cupy]``) this checks CuPy's kernels, the fused Adam kernel and cuBLAS
against NumPy; without one (ids ``[standin]``) it runs the same code path on the CPU
stand-in, which proves no implicit crossing and the code path, not the CUDA numerics.
Every other test file also runs its ``xp``-parametrised tests on both."""
import numpy as np

from minivae import Tensor, backend, nn, ops
from minivae.optim import Adam
from minivae.vae import ConvVAE, build_objective

def _run(name, fn):
    backend.use(name, dtype="float64", seed=0)
    return fn()


def _conv_grads():
    rng = np.random.default_rng(0)
    x = Tensor(backend.to_device(rng.standard_normal((2, 3, 9, 9))), requires_grad=True)
    w = Tensor(backend.to_device(rng.standard_normal((4, 3, 3, 3))), requires_grad=True)
    wt = Tensor(backend.to_device(rng.standard_normal((4, 2, 4, 4))), requires_grad=True)
    y = ops.conv_transpose2d(ops.relu(ops.conv2d(x, w, stride=2, padding=1)), wt, stride=2, padding=1)
    (y * y).sum().backward()
    return [backend.to_host(a) for a in (y.data, x.grad, w.grad, wt.grad)]


def test_conv_forward_and_backward_match(cupy_backend):
    cpu, gpu = _run("numpy", _conv_grads), _run("cupy", _conv_grads)
    for a, b in zip(cpu, gpu):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-10)


def _vae_steps():
    rng = np.random.default_rng(1)
    images = rng.random((16, 1, 8, 8))
    eps = rng.standard_normal((16, 4))
    model = ConvVAE((1, 8, 8), channels=(4, 8), latent_dim=4, dense=16, batchnorm=True)
    # identical initial weights on both backends: draw them on the host
    init = np.random.default_rng(2)
    for p in model.parameters():
        p.data[...] = backend.to_device(init.uniform(-0.3, 0.3, size=p.shape))
    objective = build_objective("balanced")
    opt = Adam(model.parameters(), lr=1e-2)
    x = Tensor(backend.to_device(images))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss, terms = objective.loss(x, model(x, eps=backend.to_device(eps)))
        loss.backward()
        opt.step()
        objective.after_step(terms)
        losses.append(loss.item())
    return losses, [backend.to_host(p.data) for p in model.parameters()], objective.gamma


def test_training_steps_match(cupy_backend):
    (l_cpu, p_cpu, g_cpu), (l_gpu, p_gpu, g_gpu) = _run("numpy", _vae_steps), _run("cupy", _vae_steps)
    assert np.allclose(l_cpu, l_gpu, rtol=1e-9)
    assert np.isclose(g_cpu, g_gpu, rtol=1e-9)
    for a, b in zip(p_cpu, p_gpu):
        assert np.allclose(a, b, rtol=1e-7, atol=1e-9)


def test_linear_layer_float32_matches(cupy_backend):
    def run():
        backend.manual_seed(0)
        layer = nn.Linear(5, 3)
        layer.weight.data[...] = backend.to_device(np.linspace(-1, 1, 15).reshape(3, 5))
        layer.bias.data[...] = 0.1  # the generators differ between backends: set every value
        x = Tensor(backend.to_device(np.linspace(0, 1, 10).reshape(2, 5)))
        return backend.to_host(ops.sigmoid(layer(x)).data)

    backend.use("numpy", dtype="float32")
    a = run()
    backend.use("cupy", dtype="float32")
    b = run()
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fused_adam_kernel_float32_matches(cupy_backend):
    """The one hand-written CUDA kernel (minivae.optim.adam) against the NumPy ufunc path
    in float32, weight decay on, 20 steps: on a GPU this is what checks the kernel."""
    def run():
        rng = np.random.default_rng(4)
        p = Tensor(backend.to_device(rng.standard_normal(1000)), requires_grad=True)
        opt = Adam([p], lr=1e-2, weight_decay=0.01)
        for i in range(20):
            opt.zero_grad()
            p.grad[...] = backend.to_device(np.sin(np.arange(1000) * (i + 1) / 7.0))
            opt.step()
        return backend.to_host(p.data)

    backend.use("numpy", dtype="float32")
    a = run()
    backend.use(cupy_backend, dtype="float32")
    b = run()
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
