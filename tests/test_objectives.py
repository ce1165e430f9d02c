"""Objectives (math.md §1–2): end-to-end float64 gradient checks with ε injected,
the balanced rule step by step, learned γ moving toward the MSE."""
import math

import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck, nn
from minivae.optim import Adam
from minivae.vae import DenseVAE, ConvVAE, build_objective
from minivae.vae.models import VAEOutput

OBJECTIVE_PARAMS = [("elbo", {}), ("elbo", {"beta": 4.0, "gamma": 0.1}), ("bernoulli", {}),
                    ("learned-gamma", {}), ("learned-gamma", {"gamma_min": 0.5}), ("balanced", {"kl_weight": 2.0})]


def tiny_model(kind):
    if kind == "dense":
        return DenseVAE((1, 4, 4), hidden=(6,), latent_dim=2, activation="tanh")
    return ConvVAE((1, 4, 4), channels=(2,), latent_dim=2, dense=5, activation="tanh")


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("name,params", OBJECTIVE_PARAMS, ids=lambda v: str(v))
def test_end_to_end_gradient_check(xp, kind, name, params):
    model = tiny_model(kind)
    objective = build_objective(name, **params)
    rng = np.random.default_rng(0)
    x = Tensor(xp.asarray(rng.random((3, 1, 4, 4))))
    eps = xp.asarray(rng.standard_normal((3, 2)))
    inputs = model.parameters() + objective.parameters()
    gradcheck.check(lambda *_: objective.loss(x, model(x, eps=eps))[0], inputs, mode="directional",
                    n_directions=3)


def test_elbo_value_matches_formula(xp):
    model = tiny_model("dense")
    rng = np.random.default_rng(1)
    x = Tensor(xp.asarray(rng.random((5, 1, 4, 4))))
    eps = xp.asarray(rng.standard_normal((5, 2)))
    out = model(x, eps=eps)
    loss, terms = build_objective("elbo", gamma=0.2, beta=3.0).loss(x, out)
    mu, lv = out.mu.numpy(), out.logvar.numpy()
    kl = 0.5 * (mu ** 2 + np.exp(lv) - lv - 1).sum(1)
    sq = ((x.numpy() - out.x_hat.numpy()) ** 2).reshape(5, -1).sum(1)
    nll = sq / 0.4 + 8 * np.log(2 * np.pi * 0.2)
    assert np.isclose(loss.item(), (nll + 3.0 * kl).mean())
    assert np.isclose(terms["kl"], kl.mean()) and np.isclose(terms["mse"], sq.mean() / 16)


def _fake_output(x_hat, k=2):
    b = x_hat.shape[0]
    zeros = Tensor(np.zeros((b, k)))
    return VAEOutput(zeros, zeros, zeros, Tensor(x_hat), Tensor(x_hat))


def test_balanced_gamma_follows_its_rule_step_by_step():
    backend.use("numpy", dtype="float64")
    objective = build_objective("balanced")
    rng = np.random.default_rng(2)
    x = Tensor(rng.random((8, 1, 4, 4)))
    gamma = 1.0
    for step in range(300):
        x_hat = x.numpy() + rng.normal(scale=0.1 + 0.5 * (step % 7 == 0), size=x.shape)  # spikes
        _, terms = objective.loss(x, _fake_output(x_hat))
        mse = ((x.numpy() - x_hat) ** 2).mean()
        assert np.isclose(terms["gamma"], gamma) and np.isclose(terms["mse"], mse)
        objective.after_step(terms)
        gamma = min(gamma, 0.99 * gamma + 0.01 * mse)
        assert np.isclose(objective.gamma, gamma)
    assert gamma < 0.2  # it came down from 1 toward the MSE, and never went up at the spikes


def test_balanced_gamma_is_constant_in_backward():
    backend.use("numpy", dtype="float64")
    objective = build_objective("balanced")
    objective.gamma = 0.25
    x = Tensor(np.full((2, 1, 2, 2), 0.5))
    x_hat = Tensor(np.full((2, 1, 2, 2), 0.1), requires_grad=True)
    zeros = Tensor(np.zeros((2, 2)))
    loss, _ = objective.loss(x, VAEOutput(zeros, zeros, zeros, x_hat, x_hat))
    loss.backward()
    # d/dx̂ of mean_b Σ_d (x − x̂)²/(2γ) = −(x − x̂)/(γ B)
    assert np.allclose(x_hat.grad, -(0.5 - 0.1) / (0.25 * 2))


def test_learned_gamma_moves_toward_the_mse():
    backend.use("numpy", dtype="float64")
    objective = build_objective("learned-gamma")
    rng = np.random.default_rng(3)
    x = Tensor(rng.random((16, 1, 4, 4)))
    x_hat = x.numpy() + rng.normal(scale=0.1, size=x.shape)  # fixed reconstruction, MSE ≈ 0.01
    mse = ((x.numpy() - x_hat) ** 2).mean()
    opt = Adam(objective.parameters(), lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        loss, _ = objective.loss(x, _fake_output(x_hat))
        loss.backward()
        opt.step()
    assert abs(math.log(objective.gamma) - math.log(mse)) < 0.01, (objective.gamma, mse)


def test_learned_gamma_lower_bound():
    backend.use("numpy", dtype="float64")
    objective = build_objective("learned-gamma", gamma_min=0.05)
    objective.log_gamma.data[...] = math.log(0.001)
    assert objective.gamma == 0.05


def test_bad_objective_requests():
    with pytest.raises(ValueError, match="unknown objective 'nope'; choose one of"):
        build_objective("nope")
    with pytest.raises(ValueError, match="gamma must be > 0"):
        build_objective("elbo", gamma=-1.0)
    with pytest.raises(ValueError, match="objective 'balanced'"):
        build_objective("balanced", gamma_min=0.1)
    backend.use("numpy", dtype="float64")
    model = DenseVAE((1, 4, 4), hidden=(6,), latent_dim=2, output="linear")
    x = Tensor(np.random.default_rng(0).random((2, 1, 4, 4)))
    with pytest.raises(ValueError, match="Bernoulli likelihood needs a decoder with sigmoid output"):
        build_objective("bernoulli").loss(x, model(x))
