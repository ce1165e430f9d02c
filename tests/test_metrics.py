"""Metrics of math.md §6: IWAE against the ELBO and in K, the quantised normal against
exact values, the Fréchet distance against closed forms, and their bad input."""
import math
import types

import numpy as np
import pytest

from minivae import Tensor, backend
from minivae.vae import DenseVAE, build_objective
from minivae.vae.metrics import (MetricError, beta_independent_nll, classifier_features, frechet_distance,
                                 frechet_distance_features, gaussian_moments, iwae_log_likelihood, iwae_nll,
                                 log_normal_interval, log_normal_tail, quantised_normal_log_prob, refit_sigma,
                                 variance_loss)


def tiny_model(seed=0, output="sigmoid"):
    backend.use("numpy", dtype="float64", seed=seed)
    return DenseVAE((1, 3, 3), hidden=(8,), latent_dim=2, activation="tanh", output=output)


def data(n=40, seed=1):
    return np.random.default_rng(seed).random((n, 1, 3, 3))


# ----------------------------------------------------------------------------- IWAE

@pytest.mark.parametrize("likelihood,params", [("gaussian", {"gamma": 0.3}), ("bernoulli", {})])
def test_iwae_k1_is_the_single_sample_elbo_for_the_same_eps(likelihood, params):
    model, x = tiny_model(), data(6)
    eps = np.random.default_rng(2).standard_normal((1, 6, 2))
    log_px = iwae_log_likelihood(model, x, 1, likelihood=likelihood, eps=eps, gamma=params.get("gamma", 1.0))
    # the objective's reconstruction term for the same ε, plus the Monte-Carlo KL log q(z|x) − log p(z)
    name = "bernoulli" if likelihood == "bernoulli" else "elbo"
    objective = build_objective(name, **params)
    out = model(Tensor(x), eps=eps[0])
    _, terms = objective.loss(Tensor(x), out)
    z, mu, lv = out.z.numpy(), out.mu.numpy(), out.logvar.numpy()
    log_q = -0.5 * (((z - mu) ** 2) / np.exp(lv) + lv + math.log(2 * math.pi)).sum(1)
    log_p = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1)
    xh, lg = out.x_hat.numpy().reshape(6, -1), out.logits.numpy().reshape(6, -1)
    xf = x.reshape(6, -1)
    if likelihood == "gaussian":
        nll = ((xf - xh) ** 2).sum(1) / (2 * 0.3) + 4.5 * math.log(2 * math.pi * 0.3)
    else:
        nll = (np.logaddexp(0, lg) - xf * lg).sum(1)
    assert np.isclose(terms["nll"], nll.mean(), rtol=1e-12)  # the same decoder term as training
    np.testing.assert_allclose(-log_px, nll + log_q - log_p, rtol=1e-12)


def test_iwae_k1_averages_to_the_closed_form_negative_elbo():
    """E_ε[−log w] = −ELBO with the closed-form KL (the objective's loss): checked to
    Monte-Carlo accuracy over 20,000 draws of ε."""
    model, x = tiny_model(), data(3)
    objective = build_objective("elbo", gamma=0.3)
    reps = 20000
    eps = np.random.default_rng(3).standard_normal((reps, 3, 2))
    xs = np.broadcast_to(x[None], (reps,) + x.shape).reshape((-1,) + x.shape[1:])
    single = -iwae_log_likelihood(model, xs, 1, gamma=0.3, eps=eps.reshape(1, -1, 2)).reshape(reps, 3)
    # the analytic-KL −ELBO per example, with the reconstruction averaged over the same ε
    loss_terms = []
    for i in range(3):
        out = model(Tensor(np.repeat(x[i:i + 1], reps, 0)), eps=eps[:, i])
        loss_terms.append(objective.loss(Tensor(np.repeat(x[i:i + 1], reps, 0)), out)[1]["loss"])
    stderr = single.std(0) / math.sqrt(reps)
    assert np.all(np.abs(single.mean(0) - np.array(loss_terms)) < 4 * stderr + 1e-9)


def test_iwae_nll_decreases_with_k_on_a_fixed_model():
    """Burda et al.'s theorem: E[log p̂_K] increases with K. On 300 examples the gaps
    (≈ 0.7, 0.25, 0.04 nats) are well above the Monte-Carlo noise (≈ 0.01)."""
    model, x = tiny_model(), data(300)
    nlls = [iwae_nll(model, x, k, gamma=0.05, seed=7)["nll_nats"] for k in (1, 4, 16, 64)]
    assert all(a >= b for a, b in zip(nlls, nlls[1:])), nlls
    assert nlls[0] - nlls[-1] > 0.5  # a real gap on an untrained model, not rounding


def test_iwae_is_exact_when_the_posterior_is_the_true_posterior():
    """A linear-Gaussian model whose encoder is the exact posterior: every importance weight
    equals p(x), so any K gives the exact log-likelihood log N(x; 0, WWᵀ + γI)."""
    backend.use("numpy", dtype="float64")
    from minivae import nn

    class LinearGaussian(nn.Module):
        latent_dim = 1

        def __init__(self, w, gamma):
            super().__init__()
            self.w, self.gamma = w, gamma
            self.training = False

        def encode(self, x):
            xf = x.numpy().reshape(len(x), -1)
            prec = 1 + self.w @ self.w / self.gamma
            mu = (xf @ self.w / self.gamma / prec)[:, None]
            return Tensor(mu), Tensor(np.full_like(mu, -math.log(prec)))

        def decode_logits(self, z):
            return Tensor(z.numpy() * self.w[None, :]).reshape((len(z), 1, 1, 3))

        def mean(self, logits):
            return logits

    w, gamma = np.array([1.0, -0.5, 2.0]), 0.2
    model = LinearGaussian(w, gamma)
    x = np.random.default_rng(4).normal(size=(5, 1, 1, 3))
    cov = np.outer(w, w) + gamma * np.eye(3)
    xf = x.reshape(5, 3)
    exact = -0.5 * (np.einsum("ni,ij,nj->n", xf, np.linalg.inv(cov), xf) + np.log(np.linalg.det(2 * np.pi * cov)))
    for k in (1, 7):
        np.testing.assert_allclose(iwae_log_likelihood(model, x, k, gamma=gamma, seed=k), exact, rtol=1e-10)


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_iwae_refuses_a_bad_k(k):
    with pytest.raises(MetricError, match="positive integer"):
        iwae_log_likelihood(tiny_model(), data(2), k)


def test_iwae_nll_units():
    model, x = tiny_model(), data(10)
    res = iwae_nll(model, x, 3, gamma=0.1)
    assert np.isclose(res["bits_per_dim"], res["nll_nats"] / (9 * math.log(2)))
    assert np.isclose(res["bits_per_dim_8bit"], res["bits_per_dim"] + 8)


# ----------------------------------------------------------------------------- quantised normal

def test_normal_tail_matches_erfc_and_its_asymptotic_branch():
    t = np.array([-5.0, 0.0, 1.0, 10.0])
    expected = [math.log(0.5 * math.erfc(v / math.sqrt(2))) for v in t]
    np.testing.assert_allclose(log_normal_tail(t), expected, rtol=1e-14)
    # across the switch to the asymptotic series (z = 26) the function stays continuous and ≈ −t²/2 − log(t√2π)
    t = 26 * math.sqrt(2) + np.array([-1e-9, 1e-9])
    v = log_normal_tail(t)
    assert abs(v[0] - v[1]) < 1e-6
    big = np.array([1e3])
    assert np.isclose(log_normal_tail(big)[0], -5e5 - math.log(1e3 * math.sqrt(2 * math.pi))
                      + math.log1p(-1e-6 + 3e-12), rtol=1e-15)


def _log_half_erfc_continued_fraction(z, terms=400):
    """log(½ erfc z) by Laplace's continued fraction, independent of the asymptotic series:
    erfc z = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated bottom-up."""
    k = z
    for n in range(terms, 0, -1):
        k = z + (n / 2) / k
    return math.log(0.5) - z * z - 0.5 * math.log(math.pi) - math.log(k)


def test_normal_tail_series_branch_matches_the_continued_fraction():
    """Beyond z = t/√2 = 26 log Q(t) uses erfc's asymptotic series; its error is below 1e-12
    there, so a wrong coefficient (even of the z⁻⁸ term, ≈ 3e-11 at z = 26) is visible."""
    for z in (6.0, 15.0, 25.0):   # the reference itself agrees with math.erfc where that is exact
        assert abs(_log_half_erfc_continued_fraction(z) - math.log(0.5 * math.erfc(z))) < 1e-12
    t = np.array([26.0, 26.5, 28.0, 35.0, 80.0, 1e3]) * math.sqrt(2)
    got = log_normal_tail(t)
    for ti, g in zip(t, got):
        assert abs(g - _log_half_erfc_continued_fraction(ti / math.sqrt(2))) < 1e-12, ti


def test_normal_interval_in_both_tails_and_the_middle():
    # symmetric in sign, exact value in the middle, finite far in the tails (no log(0))
    a, b = np.array([-0.5, 3.0, 40.0]), np.array([0.7, 3.5, 40.1])
    left = log_normal_interval(-b, -a)
    np.testing.assert_allclose(log_normal_interval(a, b), left, rtol=1e-12)
    phi = lambda v: 0.5 * math.erfc(-v / math.sqrt(2))  # noqa: E731
    assert np.isclose(log_normal_interval(a, b)[0], math.log(phi(0.7) - phi(-0.5)), rtol=1e-14)
    assert np.isfinite(log_normal_interval(a, b)).all()
    # a narrow bin: log(Φ(b) − Φ(a)) ≈ log(δ φ(m)) with m the midpoint
    m, d = 1.3, 1e-5
    approx = math.log(d) - 0.5 * m * m - 0.5 * math.log(2 * math.pi)
    assert np.isclose(log_normal_interval(np.array([m - d / 2]), np.array([m + d / 2]))[0], approx, rtol=1e-8)


def test_quantised_normal_probabilities_sum_to_one_with_open_edges():
    """On a full grid of 257 bins of width 1/256 covering [0, 1], the open-edge bins make a
    distribution; closed bins lose exactly the two tails."""
    grid = np.arange(257) / 256
    x_hat, sigma = 0.3, 0.05
    p_open = np.exp(quantised_normal_log_prob(grid, x_hat, sigma, delta=1 / 256, open_edges=True))
    assert np.isclose(p_open.sum(), 1.0, atol=1e-12)
    p_closed = np.exp(quantised_normal_log_prob(grid, x_hat, sigma, delta=1 / 256))
    phi = lambda v: 0.5 * math.erfc(-v / math.sqrt(2))  # noqa: E731
    lost = phi((-1 / 512 - x_hat) / sigma) + 1 - phi((1 + 1 / 512 - x_hat) / sigma)
    assert np.isclose(p_closed.sum(), 1.0 - lost, atol=1e-12)


class ShiftDecoder:
    """A stand-in VAE whose reconstruction is x̂ = x + c·ε₁ with ε the injected draw: the
    residual is known in closed form, so σ*² = mean over (N, D) of (c·ε₁)²."""
    latent_dim = 2
    training = False

    def __init__(self, c):
        self.c = np.asarray(c, np.float64)
        self.seen = []

    def eval(self):
        pass

    def train(self, mode=True):
        pass

    def __call__(self, x, eps=None):
        e = np.asarray(eps)
        self.seen.append(e.copy())
        x_hat = x.numpy() + self.c * e[:, :1, None, None]
        return types.SimpleNamespace(x_hat=Tensor(x_hat))


def test_refit_sigma_is_the_rms_residual_of_a_known_decoder():
    """x̂ = x + c (a constant shift; ε multiplied by 0): σ* must be |c| exactly."""
    backend.use("numpy", dtype="float64")
    x = data(30)

    class Const(ShiftDecoder):
        def __call__(self, x, eps=None):
            return types.SimpleNamespace(x_hat=Tensor(x.numpy() - 0.37))

    assert refit_sigma(Const(0.0), x) == pytest.approx(0.37, rel=1e-12)
    assert beta_independent_nll(Const(0.0), x, x[:5])["sigma_star"] == pytest.approx(0.37, rel=1e-12)
    # a per-pixel shift scaled by the first latent draw ε₁ of z ~ q(z|x): σ*² = mean (c_d ε_i1)²
    c = np.linspace(-0.3, 0.5, 9).reshape(1, 3, 3)
    model = ShiftDecoder(c)
    sigma = refit_sigma(model, x, seed=4, batch_size=7)
    eps = np.concatenate(model.seen)[:, 0]
    assert eps.shape == (30,) and len(model.seen) == 5          # one ε per image, batches of 7
    expected = math.sqrt(np.mean((c.reshape(1, -1) * eps[:, None]) ** 2))
    assert sigma == pytest.approx(expected, rel=1e-12)


def test_refit_sigma_and_beta_independent_nll_on_a_fixed_decoder():
    model = tiny_model()
    x = np.round(data(50) * 2) / 2  # values 0, ½, 1: the edge bins matter
    res = beta_independent_nll(model, x, x[:20], seed=3)
    assert res["nats_per_dim"] > res["nats_per_dim_open_edges"] > 0
    assert np.isclose(res["bits_per_dim"], res["nats_per_dim"] / math.log(2))
    with pytest.raises(MetricError, match="positive"):
        quantised_normal_log_prob(x, x, 0.0)


# ----------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_of_a_gaussian_with_itself_is_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 0.1 * np.eye(6)
    mu = rng.normal(size=6)
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-10
    f = rng.normal(size=(500, 6))
    assert abs(frechet_distance_features(f, f)) < 1e-10


def test_frechet_distance_matches_the_closed_form_for_diagonal_and_rotated_covariances():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    d1, d2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    closed = ((m1 - m2) ** 2).sum() + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert abs(frechet_distance(m1, np.diag(d1), m2, np.diag(d2)) - closed) < 1e-6 * max(1, closed)
    # the same pair rotated by one orthogonal Q (non-diagonal matrices): the distance is invariant
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    rotated = frechet_distance(q @ m1, q @ np.diag(d1) @ q.T, q @ m2, q @ np.diag(d2) @ q.T)
    assert abs(rotated - closed) < 1e-6 * max(1, closed)


def test_frechet_distance_for_non_commuting_covariances_matches_the_2x2_formula():
    """For 2×2 SPD matrices tr(√M) = √(tr M + 2√det M), M = S₁^{1/2} S₂ S₁^{1/2} (det M = det S₁ det S₂)."""
    s1 = np.array([[2.0, 0.3], [0.3, 0.5]])
    s2 = np.array([[0.4, -0.2], [-0.2, 1.5]])
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert abs(frechet_distance(np.zeros(2), s1, np.zeros(2), s2) - expected) < 1e-12


def test_gaussian_moments_need_enough_samples():
    with pytest.raises(MetricError, match="at least 11 are needed"):
        gaussian_moments(np.zeros((10, 10)))
    with pytest.raises(MetricError, match="2-D"):
        gaussian_moments(np.zeros(10))
    with pytest.raises(MetricError, match="NaN"):
        gaussian_moments(np.full((20, 2), np.nan))
    mean, cov = gaussian_moments(np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]]))
    np.testing.assert_allclose(mean, [2, 2])
    np.testing.assert_allclose(cov, np.cov(np.array([[0, 2, 4], [1, 1, 4.0]])))


def test_classifier_features_refuse_another_image_shape():
    class FakeClassifier:
        input_shape = (1, 28, 28)

        def features(self, x):
            return x.reshape((len(x), -1))

    with pytest.raises(MetricError, match=r"shape \(1, 28, 28\)"):
        classifier_features(FakeClassifier(), np.zeros((4, 3, 32, 32), np.float32))
    feats = classifier_features(FakeClassifier(), np.ones((3, 1, 28, 28), np.float32))
    assert feats.shape == (3, 784) and feats.dtype == np.float64


def test_variance_loss():
    real = np.random.default_rng(0).normal(0, 2, (1000, 3))
    assert np.isclose(variance_loss(real, real * 0.5), 0.75 * real.var(0).mean())
