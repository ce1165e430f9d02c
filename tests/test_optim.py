"""Optimisers: hand-computed Adam/SGD updates, agreement with torch.optim, flat-buffer views."""
import math
import time

import numpy as np
import pytest

from minivae import Tensor, backend, nn, ops
from minivae.optim import SGD, Adam, clip_grad_norm_


def host(a):
    return backend.to_host(a)


def scalar_param(value):
    return nn.Parameter(backend.xp().asarray([value], dtype=backend.default_dtype()))


def run_steps(opt, param, grads):
    """Set the gradient by hand and step; returns θ after each step."""
    out = []
    for g in grads:
        opt.zero_grad()
        param.grad[...] = g
        opt.step()
        out.append(float(host(param.data)[0]))
    return out


# ------------------------------------------------------------------ hand-computed updates

def test_adam_hand_computed(xp):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    p = scalar_param(1.0)
    grads = [2.0, -1.0, 0.5]
    got = run_steps(Adam([p], lr=lr, betas=(b1, b2), eps=eps), p, grads)
    # step 1 by hand: m = 0.1·2 = 0.2, v = 0.001·4 = 0.004, m̂ = 2, v̂ = 4,
    # θ = 1 − 0.1·2/(√4 + 1e-8) = 0.9 + 5e-10
    theta1 = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8)
    assert got[0] == pytest.approx(theta1, rel=1e-14)
    assert got[0] == pytest.approx(0.9, abs=1e-9)
    # step 2: m = 0.9·0.2 + 0.1·(−1) = 0.08, v = 0.999·0.004 + 0.001·1 = 0.004996,
    # θ = 0.9 − (0.1/(1−0.81))·0.08 / (sqrt(0.004996)/sqrt(1−0.999²) + 1e-8)
    theta2 = theta1 - (0.1 / 0.19) * 0.08 / (math.sqrt(0.004996) / math.sqrt(1 - 0.999 ** 2) + 1e-8)
    assert got[1] == pytest.approx(theta2, rel=1e-12)
    assert got[1] == pytest.approx(0.873366, abs=1e-6)
    # step 3: m = 0.9·0.08 + 0.1·0.5 = 0.122, v = 0.999·0.004996 + 0.001·0.25 = 0.005241004
    theta3 = theta2 - (0.1 / (1 - 0.9 ** 3)) * 0.122 / (
        math.sqrt(0.005241004) / math.sqrt(1 - 0.999 ** 3) + 1e-8)
    assert got[2] == pytest.approx(theta3, rel=1e-12)


def test_adam_weight_decay_is_l2_added_to_gradient(xp):
    """torch.optim.Adam's coupled decay: g ← g + λθ before the moments (not AdamW)."""
    p = scalar_param(2.0)
    got = run_steps(Adam([p], lr=0.1, weight_decay=0.5), p, [1.0, 1.0])
    g1 = 1.0 + 0.5 * 2.0                      # 2.0
    theta1 = 2.0 - 0.1 * g1 / (abs(g1) + 1e-8)  # first Adam step moves by lr·sign(g)
    g2 = 1.0 + 0.5 * theta1
    m2 = 0.9 * (0.1 * g1) + 0.1 * g2
    v2 = 0.999 * (0.001 * g1 ** 2) + 0.001 * g2 ** 2
    theta2 = theta1 - (0.1 / (1 - 0.9 ** 2)) * m2 / (math.sqrt(v2) / math.sqrt(1 - 0.999 ** 2) + 1e-8)
    assert got == pytest.approx([theta1, theta2], rel=1e-12)
    assert theta1 == pytest.approx(1.9, abs=1e-8)


@pytest.mark.parametrize("kwargs, expected", [
    # θ₀ = 1, lr = 0.1, gradients 1, 2, 3
    ({}, [0.9, 0.7, 0.4]),                                   # θ −= lr·g
    ({"momentum": 0.9}, [0.9, 0.61, 0.049]),                 # b = 1, 2.9, 5.61
    ({"momentum": 0.9, "nesterov": True}, [0.81, 0.349, -0.4559]),  # d = g + 0.9·b = 1.9, 4.61, 8.049
    ({"weight_decay": 0.1}, [0.89, 0.6811, 0.374289]),      # d = g + 0.1θ = 1.1, 2.089, 3.06811
    ({"momentum": 0.5, "weight_decay": 0.1}, [0.89, 0.6261, 0.187889]),  # b = 1.1, 2.639, 4.38211
])
def test_sgd_hand_computed(xp, kwargs, expected):
    p = scalar_param(1.0)
    got = run_steps(SGD([p], lr=0.1, **kwargs), p, [1.0, 2.0, 3.0])
    assert got == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------ agreement with PyTorch

def _random_params(rng, shapes):
    return [nn.Parameter(rng.standard_normal(s)) for s in shapes]


@pytest.mark.parametrize("make", [
    lambda P, T: (Adam(P, lr=0.01), lambda q: T.optim.Adam(q, lr=0.01)),
    lambda P, T: (Adam(P, lr=0.03, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                  lambda q: T.optim.Adam(q, lr=0.03, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    lambda P, T: (SGD(P, lr=0.05), lambda q: T.optim.SGD(q, lr=0.05)),
    lambda P, T: (SGD(P, lr=0.05, momentum=0.9, weight_decay=0.01),
                  lambda q: T.optim.SGD(q, lr=0.05, momentum=0.9, weight_decay=0.01)),
    lambda P, T: (SGD(P, lr=0.05, momentum=0.8, nesterov=True),
                  lambda q: T.optim.SGD(q, lr=0.05, momentum=0.8, nesterov=True)),
], ids=["adam", "adam-wd", "sgd", "sgd-momentum-wd", "sgd-nesterov"])
@pytest.mark.torch
def test_matches_torch_optim(make):
    torch = pytest.importorskip("torch")
    backend.use("numpy", dtype="float64", seed=0)
    rng = np.random.default_rng(1)
    shapes = [(5, 3), (5,), (), (2, 2, 2)]
    ours = _random_params(rng, shapes)
    theirs = [torch.tensor(host(p.data).copy(), requires_grad=True) for p in ours]
    for q in theirs:
        q.grad = torch.zeros_like(q)  # with zero_grad(set_to_none=False): zeros, like ours
    opt, make_torch = make(ours, torch)
    topt = make_torch(theirs)
    for step in range(6):
        if step == 4:  # a learning-rate change mid-run (schedulers)
            opt.lr = opt.lr / 2
            topt.param_groups[0]["lr"] /= 2
        opt.zero_grad()
        topt.zero_grad(set_to_none=False)
        for i, (p, q) in enumerate(zip(ours, theirs)):
            if step == 2 and i == 1:
                continue  # no gradient this step: both hold zeros
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            q.grad.copy_(torch.from_numpy(np.asarray(g)))
        opt.step()
        topt.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(host(p.data), q.detach().numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ flat buffer and views

def _mlp():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _loss(model, x):
    return ops.mean(ops.square(model(x)))


def _assert_views(opt, model):
    xp = backend.get_array_module(opt.flat_params)
    offset = 0
    for p in model.parameters():
        assert xp.shares_memory(p.data, opt.flat_params) and xp.shares_memory(p.grad, opt.flat_grads)
        assert host(p.data.reshape(-1)).tolist() == host(opt.flat_params[offset:offset + p.size]).tolist()
        offset += p.size
    assert offset == opt.flat_params.size


def test_flat_buffers_stay_views(xp):
    model = _mlp()
    before = {n: host(p.data).copy() for n, p in model.named_parameters()}
    opt = Adam(model, lr=0.01)
    assert opt.flat_params.size == 3 * 4 + 4 + 4 * 2 + 2
    for n, p in model.named_parameters():  # the copy into the buffer kept the values
        assert np.array_equal(host(p.data), before[n])
    x = Tensor(backend.rng().standard_normal((8, 3)))
    _loss(model, x).backward()  # backward's in-place += lands in the flat buffer
    assert float(xp.abs(opt.flat_grads).sum()) > 0
    _assert_views(opt, model)
    opt.step()
    _assert_views(opt, model)
    opt.zero_grad()
    _assert_views(opt, model)
    assert not host(opt.flat_grads).any()
    # load_state_dict of the model and of the optimiser write in place
    other = _mlp()
    model.load_state_dict(other.state_dict())
    opt.load_state_dict(Adam(other).state_dict())
    _assert_views(opt, model)
    assert np.array_equal(host(model[0].weight.data), host(other[0].weight.data))


def test_gradient_accumulates_across_backward_calls(xp):
    model = _mlp()
    opt = SGD(model, lr=0.1)
    x = Tensor(backend.rng().standard_normal((8, 3)))
    _loss(model, x).backward()
    once = host(opt.flat_grads).copy()
    _loss(model, x).backward()
    np.testing.assert_allclose(host(opt.flat_grads), 2 * once, rtol=1e-14)


def test_replaced_none_and_rebound_arrays_are_adopted(xp):
    model = _mlp()
    opt = SGD(model, lr=1.0)
    w, b = model[0].weight, model[0].bias
    opt.flat_grads.fill(7.0)
    model.zero_grad()                    # sets every .grad to None: they must count as zeros
    w.grad = xp.ones(w.shape)            # a fresh array instead of the view
    w_before, b_before = host(w.data).copy(), host(b.data).copy()
    rebound = xp.full(model[2].bias.shape, 3.0)
    model[2].bias.data = rebound         # .data rebound to a new array
    opt.step()
    np.testing.assert_allclose(host(w.data), w_before - 1.0)
    np.testing.assert_allclose(host(b.data), b_before)           # None gradient = zero
    np.testing.assert_allclose(host(model[2].bias.data), 3.0)    # adopted, zero gradient
    _assert_views(opt, model)
    with pytest.raises(ValueError, match=r"replaced by an array of shape \(2,\)"):
        w.grad = xp.ones(2)
        opt.step()


def test_refusals():
    backend.use("numpy", dtype="float64")
    a = nn.Parameter(np.zeros(3))
    b = nn.Parameter(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match=r"mixed dtypes \['float32', 'float64'\]"):
        Adam([a, b])
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="betas must lie in"):
        Adam([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="learning rate must be >= 0"):
        Adam([a], lr=-1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD([a], lr=0.1, nesterov=True)
    opt = Adam([a])
    with pytest.raises(ValueError, match="it is 'SGD' state, this is Adam"):
        opt.load_state_dict(SGD([nn.Parameter(np.zeros(3))], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="parameter shapes differ"):
        opt.load_state_dict(Adam([nn.Parameter(np.zeros(4))]).state_dict())
    with pytest.raises(ValueError, match=r"missing entries \['momentum_buffer'\]"):
        SGD([a], lr=0.1, momentum=0.9).load_state_dict(SGD([a], lr=0.1).state_dict())


def test_shared_parameter_is_updated_once():
    backend.use("numpy", dtype="float64")
    p = nn.Parameter(np.array([1.0]))
    opt = SGD([p, p], lr=0.5)
    assert opt.flat_params.size == 1
    p.grad[...] = 1.0
    opt.step()
    assert host(p.data)[0] == 0.5


def test_state_dict_round_trip_resumes_exactly(xp):
    backend.manual_seed(3)
    model = _mlp()
    x = Tensor(backend.rng().standard_normal((8, 3)))

    def train(opt, m, n):
        for _ in range(n):
            opt.zero_grad()
            _loss(m, x).backward()
            opt.step()

    opt = Adam(model, lr=0.01, weight_decay=0.01)
    train(opt, model, 3)
    state = opt.state_dict()
    assert state["t"] == 3 and state["type"] == "Adam" and state["betas"] == [0.9, 0.999]
    twin = _mlp()
    twin.load_state_dict(model.state_dict())
    twin_opt = Adam(twin, lr=0.5)
    m_view = twin_opt.m
    twin_opt.load_state_dict(state)
    assert twin_opt.m is m_view and twin_opt.lr == 0.01 and twin_opt.t == 3
    train(opt, model, 2)
    train(twin_opt, twin, 2)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(host(a.data), host(b.data))


def test_clip_grad_norm(xp):
    p = nn.Parameter(xp.zeros(2))
    q = nn.Parameter(xp.zeros(1))
    opt = SGD([p, q], lr=1.0)
    p.grad[...] = xp.asarray([3.0, 0.0])
    q.grad[...] = 4.0
    assert clip_grad_norm_(opt, 10.0) == pytest.approx(5.0)
    assert host(opt.flat_grads).tolist() == [3.0, 0.0, 4.0]  # below the bound: untouched
    assert clip_grad_norm_(opt, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(host(opt.flat_grads), [0.6, 0.0, 0.8], rtol=1e-6)
    # the same on a list of parameters (loops over .grad)
    p.grad[...] = xp.asarray([3.0, 0.0])
    q.grad[...] = 4.0
    assert clip_grad_norm_([p, q], 2.5) == pytest.approx(5.0)
    np.testing.assert_allclose(host(p.grad), [1.5, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        clip_grad_norm_(opt, 0.0)


# ------------------------------------------------------------------ an end-to-end fit

def test_mlp_fits_sine_with_adam(xp):
    """A 1-64-64-1 ReLU MLP fits sin on [−π, π] to MSE < 1e-3 with Adam in a few seconds."""
    backend.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = Adam(model, lr=3e-3)
    x_np = np.linspace(-np.pi, np.pi, 256).reshape(-1, 1)
    x, y = Tensor(x_np), Tensor(np.sin(x_np))
    start = time.perf_counter()
    for step in range(600):
        opt.zero_grad()
        loss = ops.mean(ops.square(model(x) - y))
        loss.backward()
        opt.step()
        if step == 400:
            opt.lr = 1e-3
    mse = ops.mean(ops.square(model(x) - y)).item()
    assert mse < 1e-3, f"MSE {mse:.2e} after 600 Adam steps ({time.perf_counter() - start:.1f} s)"
