"""nn layers: gradient checks, PyTorch naming and layouts, state_dict round trips."""
import numpy as np
import pytest

from minivae import backend, gradcheck, nn
from minivae.gradcheck import random_input


def test_linear_gradcheck(xp):
    layer = nn.Linear(4, 3)
    gradcheck.check_module(layer, random_input((5, 4)))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "identity"])
def test_activation_modules(xp, name):
    gradcheck.check_module(nn.activation(name), random_input((3, 4), kinks=(0.0,)))


def test_sequential_mlp_gradcheck_and_names(xp):
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2), nn.Flatten(), nn.Reshape(2, 1))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model[0].weight.shape == (5, 3)  # PyTorch's (out, in)
    gradcheck.check_module(model, random_input((4, 3)))
    assert model(random_input((4, 3))).shape == (4, 2, 1)


def test_state_dict_round_trip_is_in_place(xp):
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    view_before = b.weight.data
    b.load_state_dict(a.state_dict())
    assert b.weight.data is view_before
    assert np.array_equal(backend.to_host(b.weight.data), backend.to_host(a.weight.data))
    with pytest.raises(ValueError, match="shape mismatch for 'weight'"):
        nn.Linear(4, 2).load_state_dict(a.state_dict())
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"weight": a.weight.data})


def test_linear_rejects_wrong_input_width(xp):
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 4\), got \(2, 3\)"):
        nn.Linear(4, 2)(random_input((2, 3)))


def test_initialisation_statistics():
    backend.use("numpy", dtype="float64", seed=3)
    w = nn.Linear(1000, 500).weight.numpy()
    assert abs(w.max() - 1 / np.sqrt(1000)) < 1e-3 and abs(w.min() + 1 / np.sqrt(1000)) < 1e-3
    w_he = nn.Linear(1000, 500, init_scheme="he").weight.numpy()
    assert abs(w_he.std() - np.sqrt(2 / 1000)) < 1e-3
    # Glorot/Xavier (Glorot & Bengio 2010, eq. 16): U(−a, a), a = √(6/(fan_in + fan_out))
    w_gl = nn.Linear(1000, 500, init_scheme="glorot").weight.numpy()
    bound = np.sqrt(6 / 1500)
    assert abs(w_gl.max() - bound) < 1e-3 and abs(w_gl.min() + bound) < 1e-3
    assert abs(w_gl.std() - bound / np.sqrt(3)) < 1e-3
    with pytest.raises(ValueError, match="unknown initialisation 'bad'"):
        nn.Linear(2, 2, init_scheme="bad")


@pytest.mark.torch
def test_matches_pytorch_linear():
    torch = pytest.importorskip("torch")
    backend.use("numpy", dtype="float64")
    ours = nn.Sequential(nn.Linear(4, 6), nn.ELU(), nn.Linear(6, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ELU(), torch.nn.Linear(6, 2)).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4))
    xt = torch.from_numpy(x).requires_grad_()
    theirs(xt).square().sum().backward()
    xo = gradcheck.Tensor(x, requires_grad=True)
    (ours(xo) ** 2).sum().backward()
    assert np.allclose(xo.grad, xt.grad.numpy())
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        assert np.allclose(p.grad, tp.grad.numpy()), name
