"""Closed forms of math.md §1–2 against numbers: KL vs Monte Carlo, the Gaussian NLL's
optimum in γ, the Bernoulli NLL's stable form, reparameterisation."""
import math

import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck
from minivae.vae import distributions as dist


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(1, 4)), rng.normal(scale=0.5, size=(1, 4))
    closed = dist.kl_diag_gaussian(Tensor(mu), Tensor(logvar)).item()
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * rng.standard_normal((400_000, 4))
    log_q = -0.5 * (((z - mu) / sigma) ** 2 + logvar + np.log(2 * np.pi)).sum(1)
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi)).sum(1)
    mc = (log_q - log_p).mean()
    stderr = (log_q - log_p).std() / np.sqrt(len(z))
    assert abs(closed - mc) < 4 * stderr, (closed, mc, stderr)


def test_kl_is_zero_at_the_prior_and_per_dim_sums(xp):
    mu, logvar = Tensor(xp.zeros((3, 5))), Tensor(xp.zeros((3, 5)))
    assert np.allclose(dist.kl_diag_gaussian(mu, logvar).numpy(), 0)
    m, lv = gradcheck.random_input((3, 5)), gradcheck.random_input((3, 5))
    per_dim = dist.kl_diag_gaussian(m, lv, per_dim=True).numpy()
    assert np.allclose(per_dim.sum(1), dist.kl_diag_gaussian(m, lv).numpy())
    gradcheck.check(dist.kl_diag_gaussian, [m, lv])


def test_gaussian_nll_formula_and_optimum_in_gamma(xp):
    rng = np.random.default_rng(1)
    x, x_hat = rng.random((6, 1, 3, 3)), rng.random((6, 1, 3, 3))
    D = 9
    sq = ((x - x_hat) ** 2).reshape(6, -1).sum(1)
    gamma = 0.3
    nll = dist.gaussian_nll(Tensor(xp.asarray(x)), Tensor(xp.asarray(x_hat)), gamma).numpy()
    assert np.allclose(nll, sq / (2 * gamma) + D / 2 * np.log(2 * np.pi * gamma))
    # γ* = argmin_γ E[NLL] equals the per-element MSE (math.md §2.3): scan the code's NLL in γ
    mse = sq.mean() / D
    gammas = np.linspace(0.5 * mse, 2 * mse, 1501)
    tx, txh = Tensor(xp.asarray(x)), Tensor(xp.asarray(x_hat))
    values = [dist.gaussian_nll(tx, txh, float(g)).numpy().mean() for g in gammas]
    assert abs(gammas[int(np.argmin(values))] - mse) < 2e-3 * mse
    lg = Tensor(xp.asarray(math.log(0.3)))
    assert np.allclose(dist.gaussian_nll(tx, txh, log_gamma=lg).numpy(), sq / 0.6 + D / 2 * np.log(2 * np.pi * 0.3))
    log_gamma = Tensor(xp.asarray(math.log(mse)), requires_grad=True)
    dist.gaussian_nll(Tensor(xp.asarray(x)), Tensor(xp.asarray(x_hat)), log_gamma=log_gamma).mean().backward()
    assert abs(float(log_gamma.grad)) < 1e-10  # stationary at log γ = log MSE


def test_gaussian_nll_gradients(xp):
    x, x_hat = gradcheck.random_input((4, 6), requires_grad=False), gradcheck.random_input((4, 6))
    log_gamma = Tensor(xp.asarray(-0.7), requires_grad=True)
    gradcheck.check(lambda xh, lg: dist.gaussian_nll(x, xh, log_gamma=lg), [x_hat, log_gamma])
    gamma = Tensor(xp.asarray(0.4), requires_grad=True)
    gradcheck.check(lambda xh, g: dist.gaussian_nll(x, xh, g), [x_hat, gamma])


def test_bernoulli_nll_stable_form(xp):
    x = np.array([[0.0, 1.0, 0.3, 1.0]])
    logits = np.array([[-2.0, 3.0, 0.5, -1000.0]])
    got = dist.bernoulli_nll_from_logits(Tensor(xp.asarray(x)), Tensor(xp.asarray(logits))).numpy()
    p = 1 / (1 + np.exp(-logits[:, :3]))
    direct = -(x[:, :3] * np.log(p) + (1 - x[:, :3]) * np.log(1 - p)).sum()
    assert np.isclose(got[0], direct + 1000.0)  # x=1 at logit −1000: −log σ(−1000) = 1000, no inf
    lg = gradcheck.random_input((3, 5), low=-4, high=4)
    xs = Tensor(xp.asarray(np.random.default_rng(2).random((3, 5))))
    gradcheck.check(lambda l: dist.bernoulli_nll_from_logits(xs, l), [lg])


def test_reparameterize_with_injected_eps(xp):
    mu, logvar = gradcheck.random_input((3, 2)), gradcheck.random_input((3, 2))
    eps = xp.asarray(np.random.default_rng(3).standard_normal((3, 2)))
    z = dist.reparameterize(mu, logvar, eps).numpy()
    assert np.allclose(z, mu.numpy() + np.exp(0.5 * logvar.numpy()) * backend.to_host(eps))
    gradcheck.check(lambda m, lv: dist.reparameterize(m, lv, eps), [mu, logvar])
    with pytest.raises(ValueError, match="eps has shape"):
        dist.reparameterize(mu, logvar, xp.zeros((2, 2)))


def test_log_densities(xp):
    z, mu, lv = (gradcheck.random_input((4, 3)) for _ in range(3))
    expected = -0.5 * (((z.numpy() - mu.numpy()) ** 2) * np.exp(-lv.numpy()) + lv.numpy() + np.log(2 * np.pi)).sum(1)
    assert np.allclose(dist.log_normal_diag(z, mu, lv).numpy(), expected)
    assert np.allclose(dist.log_standard_normal(z).numpy(), -0.5 * (z.numpy() ** 2 + np.log(2 * np.pi)).sum(1))
    gradcheck.check(dist.log_normal_diag, [z, mu, lv])
