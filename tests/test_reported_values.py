"""Every objective's *reported* numbers against their formulas, written here in NumPy
(math.md §1–3): the loss value (not only its gradient), ``nll``, ``rec``, ``kl``,
``neg_elbo``, ``mse`` and ``gamma`` of ELBO, learned γ, balanced and GECO.

A model output with a known μ, log σ² and x̂ is built by hand, so no expected value
comes from minivae's own functions."""
import math

import numpy as np
import pytest

from minivae import Tensor, backend
from minivae.vae import build_objective
from minivae.vae import constraints as C
from minivae.vae.geco import GECO
from minivae.vae.models import VAEOutput

B, D, K = 5, 12, 3


@pytest.fixture
def case():
    backend.use("numpy", dtype="float64")
    rng = np.random.default_rng(11)
    x = rng.random((B, 1, 3, 4))
    x_hat = np.clip(x + rng.normal(scale=0.2, size=x.shape), 0.01, 0.99)
    mu, lv = rng.normal(size=(B, K)), rng.normal(scale=0.5, size=(B, K))
    out = VAEOutput(Tensor(mu), Tensor(lv), Tensor(mu), logits=Tensor(x_hat), x_hat=Tensor(x_hat), output="linear")
    sq = ((x - x_hat) ** 2).reshape(B, -1).sum(1)                 # Σ_d (x_d − x̂_d)² per example
    kl = 0.5 * (mu ** 2 + np.exp(lv) - lv - 1).sum(1)               # closed-form KL per example
    return Tensor(x), out, sq, kl


def _gauss_nll(sq, gamma):
    return sq / (2 * gamma) + D / 2 * math.log(2 * math.pi * gamma)


def test_elbo_reports(case):
    x, out, sq, kl = case
    loss, t = build_objective("elbo", gamma=0.3, beta=2.5).loss(x, out)
    nll = _gauss_nll(sq, 0.3)
    assert loss.item() == pytest.approx((nll + 2.5 * kl).mean(), rel=1e-12)
    assert t["loss"] == pytest.approx((nll + 2.5 * kl).mean(), rel=1e-12)
    assert t["nll"] == pytest.approx(nll.mean(), rel=1e-12) and t["rec"] == pytest.approx(nll.mean(), rel=1e-12)
    assert t["kl"] == pytest.approx(kl.mean(), rel=1e-12)
    assert t["neg_elbo"] == pytest.approx((nll + kl).mean(), rel=1e-12)
    assert t["mse"] == pytest.approx(sq.mean() / D, rel=1e-12) and t["gamma"] == 0.3


def test_bernoulli_elbo_reports(case):
    x, out, _, kl = case
    backend.use("numpy", dtype="float64")
    logits = np.random.default_rng(3).normal(size=(B, 1, 3, 4))
    out = VAEOutput(out.mu, out.logvar, out.z, logits=Tensor(logits), x_hat=Tensor(1 / (1 + np.exp(-logits))))
    loss, t = build_objective("bernoulli", beta=0.5).loss(x, out)
    p = 1 / (1 + np.exp(-logits))
    xf = x.numpy()
    nll = -(xf * np.log(p) + (1 - xf) * np.log(1 - p)).reshape(B, -1).sum(1)
    assert loss.item() == pytest.approx((nll + 0.5 * kl).mean(), rel=1e-10)
    assert t["nll"] == pytest.approx(nll.mean(), rel=1e-10)
    assert t["neg_elbo"] == pytest.approx((nll + kl).mean(), rel=1e-10)


@pytest.mark.parametrize("log_gamma,gamma_min", [(0.0, 0.0), (-1.7, 0.0), (-3.0, 0.2)])
def test_learned_gamma_reports(case, log_gamma, gamma_min):
    x, out, sq, kl = case
    objective = build_objective("learned-gamma", beta=1.5, gamma_min=gamma_min)
    objective.log_gamma.data[...] = log_gamma
    gamma = max(math.exp(log_gamma), gamma_min)                      # γ_min clamps γ from below
    loss, t = objective.loss(x, out)
    nll = _gauss_nll(sq, gamma)
    assert loss.item() == pytest.approx((nll + 1.5 * kl).mean(), rel=1e-12)
    assert t["loss"] == pytest.approx((nll + 1.5 * kl).mean(), rel=1e-12)
    assert t["nll"] == pytest.approx(nll.mean(), rel=1e-12)
    assert t["neg_elbo"] == pytest.approx((nll + kl).mean(), rel=1e-12)
    assert t["gamma"] == pytest.approx(gamma, rel=1e-12)


def test_balanced_reports(case):
    """loss = Σ(x − x̂)²/(2γ) + k·KL without the constant; nll adds (D/2) log(2πγ) back."""
    x, out, sq, kl = case
    objective = build_objective("balanced", kl_weight=3.0)
    objective.gamma = 0.07
    loss, t = objective.loss(x, out)
    assert loss.item() == pytest.approx((sq / 0.14 + 3.0 * kl).mean(), rel=1e-12)
    assert t["loss"] == pytest.approx((sq / 0.14 + 3.0 * kl).mean(), rel=1e-12)
    assert t["rec"] == pytest.approx((sq / 0.14).mean(), rel=1e-12)
    nll = _gauss_nll(sq, 0.07)
    assert t["nll"] == pytest.approx(nll.mean(), rel=1e-12)
    assert t["neg_elbo"] == pytest.approx((nll + kl).mean(), rel=1e-12)
    assert t["gamma"] == 0.07 and t["mse"] == pytest.approx(sq.mean() / D, rel=1e-12)


def test_geco_reports(case):
    """nll = −log N(x; x̂, γ*I) at γ* = mse: (D/2)(log(2π·mse) + 1), the ML decoder variance."""
    x, out, sq, kl = case
    geco = GECO(C.RE(0.1), lambda_init=4.0)
    loss, t = geco.loss(x, out)
    mse = sq.mean() / D
    c_batch = (((x.numpy() - out.x_hat.numpy()) ** 2).reshape(B, -1).mean(1) - 0.01).mean()
    assert t["c_batch"] == pytest.approx(c_batch, rel=1e-12) and t["c_ma"] == pytest.approx(c_batch, rel=1e-12)
    assert loss.item() == pytest.approx(kl.mean() + 4.0 * c_batch, rel=1e-12)
    assert t["loss"] == pytest.approx(kl.mean() + 4.0 * c_batch, rel=1e-12)
    assert t["rec"] == pytest.approx(sq.mean(), rel=1e-12) and t["mse"] == pytest.approx(mse, rel=1e-12)
    assert t["gamma"] == pytest.approx(mse, rel=1e-12)
    # the Gaussian NLL at γ = mse, summed per example and averaged: Σ sq/(2·mse) + (D/2) log(2π·mse)
    assert t["nll"] == pytest.approx(_gauss_nll(sq, mse).mean(), rel=1e-12)
    assert t["nll"] == pytest.approx(D / 2 * (math.log(2 * math.pi * mse) + 1), rel=1e-12)
    assert t["kl"] == pytest.approx(kl.mean(), rel=1e-12) and t["lambda"] == pytest.approx(4.0)
