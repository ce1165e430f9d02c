"""Likelihood and sample-quality metrics (math.md §6).

* :func:`iwae_log_likelihood` -- the importance-weighted bound of Burda et al. (2015):
  log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K,
  z_k ~ q(z|x). K = 1 is the single-sample ELBO for the same ε (its expectation
  is the closed-form-KL ELBO the objectives train), and the bound tightens as K grows.
* :func:`beta_independent_nll` -- Taming VAEs (Rezende & Viola 2018), App. D:
  re-fit one global σ* on the training data, then score the test data under the
  *quantised* normal P(x_d) = Φ((x_d + δ/2 − x̂_d)/σ*) − Φ((x_d − δ/2 − x̂_d)/σ*),
  with bins of width δ = 1/255 centred on the 256 levels k/255 of 8-bit data.
* :func:`frechet_distance` -- ‖m₁−m₂‖² + tr(S₁ + S₂ − 2 (S₁^{1/2} S₂ S₁^{1/2})^{1/2}) between
  Gaussians fitted to features; with minivae's own classifier the numbers are
  **not comparable with Inception-based FIDs** (no Inception weights are shipped).

Everything here runs without a graph (``no_grad``), model in eval mode, and
returns host float64 NumPy values. Log-sum-exp and the normal tails are computed
in float64 on the host.
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..nn.evaluation import batched_map, evaluating
from .distributions import (bernoulli_nll_from_logits, gaussian_nll, log_normal_diag,
                            log_standard_normal)

LIKELIHOODS = ("gaussian", "bernoulli")
LOG2 = math.log(2.0)


class MetricError(ValueError):
    """A metric was asked for with arguments it cannot honour (the message says what to do)."""


# ============================================================================ IWAE

def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or k < 1:
        raise MetricError(f"the number of importance samples K must be a positive integer, got {k!r}")
    return int(k)


def iwae_log_likelihood(model, images, k: int, *, likelihood: str = "gaussian", gamma: float = 1.0,
                        eps=None, seed: int = 0, batch_size: int = 100, max_chunk: int = 2000):
    """Per-example IWAE estimates of log p(x) in nats (host float64 array of shape (N,)).

    ``likelihood``: ``"gaussian"`` (decoder N(x̂, γI), the run's γ) or ``"bernoulli"``
    (logits). ``eps``: optional array (K, N, latent) of standard-normal draws, so
    that K = 1 can be compared with the ELBO for the same ε; otherwise drawn from
    ``numpy.random.default_rng(seed)`` (reproducible). ``max_chunk`` bounds the
    number of decoder inputs per pass (K is split into chunks).
    """
    k = _check_k(k)
    if likelihood not in LIKELIHOODS:
        raise MetricError(f"unknown likelihood {likelihood!r}; choose one of: {', '.join(LIKELIHOODS)}")
    if likelihood == "gaussian" and not (gamma > 0 and math.isfinite(gamma)):
        raise MetricError(f"the Gaussian decoder variance γ must be positive and finite, got {gamma}")
    images = numpy.asarray(images)
    n = len(images)
    latent = model.latent_dim
    if eps is not None:
        eps = numpy.asarray(backend.to_host(getattr(eps, "data", eps)), dtype=numpy.float64)
        if eps.shape != (k, n, latent):
            raise MetricError(f"eps must have shape (K, N, latent) = {(k, n, latent)}, got {eps.shape}")
    gen = numpy.random.default_rng(seed)
    log_w = numpy.empty((k, n))
    with evaluating(model):
        for start in range(0, n, batch_size):
            xb = images[start:start + batch_size]
            b = len(xb)
            x = Tensor(backend.to_device(xb))
            mu, logvar = model.encode(x)
            kc = max(1, min(k, max_chunk // b))
            for k0 in range(0, k, kc):
                kk = min(kc, k - k0)
                e = eps[k0:k0 + kk, start:start + b] if eps is not None else \
                    gen.standard_normal((kk, b, latent))
                log_w[k0:k0 + kk, start:start + b] = _log_weights(model, x, mu, logvar, e, likelihood, gamma)
    m = log_w.max(axis=0)
    return m + numpy.log(numpy.exp(log_w - m).sum(axis=0)) - math.log(k)


def _log_weights(model, x, mu, logvar, eps, likelihood, gamma):
    """log p(x|z) + log p(z) − log q(z|x) for eps of shape (kk, B, latent) -> host (kk, B)."""
    kk, b, latent = eps.shape
    xp = backend.get_array_module(mu.data)
    e = Tensor(xp.asarray(eps.reshape(kk * b, latent), dtype=mu.dtype))
    mu_r = Tensor(xp.broadcast_to(mu.data[None], (kk, b, latent)).reshape(kk * b, latent))
    lv_r = Tensor(xp.broadcast_to(logvar.data[None], (kk, b, latent)).reshape(kk * b, latent))
    z = mu_r + (lv_r * 0.5).exp() * e
    x_r = Tensor(xp.broadcast_to(x.data[None], (kk,) + x.shape).reshape((kk * b,) + x.shape[1:]))
    logits = model.decode_logits(z)
    if likelihood == "bernoulli":
        nll = bernoulli_nll_from_logits(x_r, logits)
    else:
        nll = gaussian_nll(x_r, model.mean(logits), float(gamma))
    log_w = (-nll.data.astype(xp.float64) + log_standard_normal(z).data.astype(xp.float64)
             - log_normal_diag(z, mu_r, lv_r).data.astype(xp.float64))
    return backend.to_host(log_w).reshape(kk, b)


def iwae_nll(model, images, k: int, **kwargs) -> dict:
    """Mean IWAE negative log-likelihood: nats per example and bits per dimension.

    ``bits_per_dim`` is −log₂ p(x)/D of the density on [0, 1]^D; the 8-bit convention
    (the density of x·256) adds 8: ``bits_per_dim_8bit``.
    """
    log_px = iwae_log_likelihood(model, images, k, **kwargs)
    d = int(numpy.prod(numpy.asarray(images).shape[1:]))
    nats = float(-log_px.mean())
    return {"k": int(k), "n": int(len(log_px)), "nll_nats": nats,
            "nll_nats_stderr": float(log_px.std(ddof=1) / math.sqrt(len(log_px))) if len(log_px) > 1 else None,
            "bits_per_dim": nats / (d * LOG2), "bits_per_dim_8bit": nats / (d * LOG2) + 8.0}


# ============================================================================ quantised normal

_erfc = numpy.frompyfunc(math.erfc, 1, 1)
_ASYMPTOTIC_FROM = 26.0  # math.erfc(z) underflows to 0 just above z = 26.5


def log_normal_tail(t):
    """log Q(t) = log P(N(0,1) > t) = log(½ erfc(t/√2)), float64, for any t.

    NumPy has no erfc and SciPy is not a dependency: the double-precision
    ``math.erfc`` (vectorised with ``numpy.frompyfunc``) where it does not
    underflow, and beyond z = t/√2 = 26 the asymptotic series
    erfc(z) = e^{−z²}/(z√π) · (1 − 1/(2z²) + 3/(4z⁴) − 15/(8z⁶) + 105/(16z⁸)),
    whose first omitted term is below 1e-12 relatively there -- so the log never sees 0.
    """
    t = numpy.asarray(t, dtype=numpy.float64)
    z = t / math.sqrt(2.0)
    out = numpy.empty_like(z)
    small = z < _ASYMPTOTIC_FROM
    out[small] = numpy.log(0.5 * _erfc(z[small]).astype(numpy.float64))
    zb = z[~small]
    if zb.size:
        inv = 1.0 / (zb * zb)
        series = 1.0 + inv * (-0.5 + inv * (0.75 + inv * (-1.875 + inv * 6.5625)))
        out[~small] = math.log(0.5) - zb * zb - numpy.log(zb * math.sqrt(math.pi)) + numpy.log(series)
    return out


def _log_sub(log_a, log_b):
    """log(a − b) for a ≥ b > 0 given as logs (log1p/expm1 form, exact when b ≪ a)."""
    with numpy.errstate(divide="ignore"):
        return log_a + numpy.log(-numpy.expm1(log_b - log_a))


def log_normal_interval(a, b):
    """log(Φ(b) − Φ(a)) for a < b, stable in both tails (float64 arrays)."""
    a, b = numpy.broadcast_arrays(numpy.asarray(a, numpy.float64), numpy.asarray(b, numpy.float64))
    out = numpy.empty(a.shape)
    right = a >= 0                 # Φ(b) − Φ(a) = Q(a) − Q(b)
    left = (b <= 0) & ~right       # = Q(−b) − Q(−a)
    mid = ~(right | left)          # = 1 − Q(−a) − Q(b), both tails < ½
    out[right] = _log_sub(log_normal_tail(a[right]), log_normal_tail(b[right]))
    out[left] = _log_sub(log_normal_tail(-b[left]), log_normal_tail(-a[left]))
    tails = numpy.exp(log_normal_tail(-a[mid])) + numpy.exp(log_normal_tail(b[mid]))
    out[mid] = numpy.log1p(-tails)
    return out


DELTA_8BIT = 1.0 / 255   # 8-bit data are k/255, k = 0…255: bins of width 1/255 centred on them


def quantisation_levels(delta: float) -> int:
    """n = 1/δ, checked to be an integer: the levels are k·δ, k = 0…n (0 and 1 included)."""
    if not (isinstance(delta, (int, float, numpy.floating)) and math.isfinite(delta) and 0 < delta <= 1):
        raise MetricError(f"the quantisation step δ must be a number in (0, 1], got {delta!r}")
    n = round(1.0 / delta)
    if abs(n * delta - 1.0) > 1e-9:
        raise MetricError(f"the quantisation step δ must be 1/n for an integer n (levels k·δ from 0 to 1), "
                          f"got δ = {delta!r}; 8-bit data (k/255) need δ = 1/255")
    return int(n)


def quantise(x, delta: float = DELTA_8BIT):
    """The level index k = round(x/δ) of each value (float64), clipped to 0…1/δ, and how far
    the values were from their level (max |x − kδ|/δ): 0 up to rounding for 8-bit data."""
    n = quantisation_levels(delta)
    x = numpy.asarray(x, numpy.float64)
    if x.size and not (x.min() >= -1e-6 and x.max() <= 1 + 1e-6):
        raise MetricError(f"the quantised normal scores data in [0, 1] (levels k·δ); found values in "
                          f"[{x.min():.4g}, {x.max():.4g}]: scale the data to [0, 1] first")
    k = numpy.clip(numpy.rint(x * n), 0, n)
    off = float(numpy.abs(x * n - k).max()) if x.size else 0.0
    return k, off


def quantised_normal_log_prob(x, x_hat, sigma: float, delta: float = DELTA_8BIT, open_edges: bool = False):
    """Per-element log P(x_d) under the quantised normal of bin width δ (math.md §6;
    Taming VAEs App. D).

    The levels are k·δ, k = 0…n, n = 1/δ (an integer: δ = 1/255 for 8-bit data k/255,
    256 levels). Each value is first taken to its level k = round(x_d/δ) (a no-op for
    8-bit data; continuous data in [0, 1] are scored as their 8-bit rendering), and

        P(x_d) = Φ((kδ + δ/2 − x̂_d)/σ) − Φ((kδ − δ/2 − x̂_d)/σ):

    the bins tile [−δ/2, 1 + δ/2] without gaps or overlaps. Edge bins: by default
    (``open_edges=False``, the formula as written) the bins of 0 and 1 are closed, so
    the mass of the normal below −δ/2 and above 1 + δ/2 is lost and Σ_k P < 1; with
    ``open_edges`` they extend to ∓∞ (the discretised-likelihood convention of
    PixelCNN++) and Σ_k P = 1 exactly over the n + 1 levels.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise MetricError(f"σ* must be positive and finite, got {sigma}")
    k, _ = quantise(x, delta)
    n = quantisation_levels(delta)
    centre = k / n                     # k·δ, exact for k = 0 and k = n
    x_hat = numpy.asarray(x_hat, numpy.float64)
    a = (centre - delta / 2 - x_hat) / sigma
    b = (centre + delta / 2 - x_hat) / sigma
    if open_edges:
        a, b = numpy.broadcast_arrays(numpy.where(k == 0, -numpy.inf, a), numpy.where(k == n, numpy.inf, b))
        out = numpy.empty(a.shape)
        lo, hi = numpy.isneginf(a), numpy.isposinf(b)
        both = lo & hi
        out[both] = 0.0
        only_lo, only_hi, rest = lo & ~hi, hi & ~lo, ~(lo | hi)
        out[only_lo] = log_normal_tail(-b[only_lo])   # Φ(b)
        out[only_hi] = log_normal_tail(a[only_hi])    # 1 − Φ(a)
        out[rest] = log_normal_interval(a[rest], b[rest])
        return out
    return log_normal_interval(a, b)


def _reconstructions(model, images, seed, batch_size):
    """x̂ = g(z), z ~ q(z|x) with ε from ``default_rng(seed)`` (host float64, image shape)."""
    eps = numpy.random.default_rng(seed).standard_normal((len(images), model.latent_dim))
    with evaluating(model):
        x_hat = batched_map(lambda x, e: model(x, eps=e.data).x_hat, images, eps, batch_size=batch_size)
    return x_hat.astype(numpy.float64)


def refit_sigma(model, images, seed: int = 0, batch_size: int = 500) -> float:
    """σ* with σ*² = (1/(N·D)) Σ_i ‖x_i − g(z_i)‖², z_i ~ q(z|x_i)  (Taming VAEs, App. D)."""
    images = numpy.asarray(images)
    sq, count = 0.0, 0
    for start in range(0, len(images), 5000):  # bounded host memory
        xb = images[start:start + 5000]
        x_hat = _reconstructions(model, xb, seed + start, batch_size)
        sq += float(((xb.astype(numpy.float64) - x_hat) ** 2).sum())
        count += xb.size
    return math.sqrt(sq / count)


def beta_independent_nll(model, train_images, test_images, *, delta: float = DELTA_8BIT, seed: int = 0,
                         batch_size: int = 500, sigma: float | None = None) -> dict:
    """The β-independent NLL of Taming VAEs (App. D): σ* re-fitted on ``train_images``,
    then the quantised-normal NLL of ``test_images`` with x̂ = g(z), z ~ q(z|x).

    Returns nats and bits per pixel (per element), with closed edge bins (the spec's
    formula; ``nats_per_dim``) and with open edge bins (a distribution over the levels;
    ``nats_per_dim_open_edges``), see :func:`quantised_normal_log_prob`; ``levels`` and
    ``edge_bins`` state the convention, ``max_offset_from_levels`` how far (in units of
    δ) the test values were from the levels they were scored as (0 for 8-bit data).
    """
    n_levels = quantisation_levels(delta) + 1
    sigma_star = refit_sigma(model, train_images, seed, batch_size) if sigma is None else float(sigma)
    test_images = numpy.asarray(test_images)
    closed = opened = 0.0
    count, offset = 0, 0.0
    for start in range(0, len(test_images), 2000):
        xb = test_images[start:start + 2000].astype(numpy.float64)
        offset = max(offset, quantise(xb, delta)[1])
        x_hat = _reconstructions(model, test_images[start:start + 2000], seed + 1 + start, batch_size)
        closed += float(quantised_normal_log_prob(xb, x_hat, sigma_star, delta).sum())
        opened += float(quantised_normal_log_prob(xb, x_hat, sigma_star, delta, open_edges=True).sum())
        count += xb.size
    nats, nats_open = -closed / count, -opened / count
    return {"sigma_star": sigma_star, "delta": delta, "levels": n_levels,
            "bin_centres": f"k/{n_levels - 1}, k = 0…{n_levels - 1} (each value rounded to its level)",
            "edge_bins": "closed: the bins of 0 and 1 end at −δ/2 and 1+δ/2 (mass outside is lost); "
                         "open_edges: they extend to ∓∞ (the probabilities sum to 1)",
            "max_offset_from_levels": offset, "n_test": int(len(test_images)),
            "nats_per_dim": nats, "bits_per_dim": nats / LOG2,
            "nats_per_dim_open_edges": nats_open, "bits_per_dim_open_edges": nats_open / LOG2}


# ============================================================================ Fréchet distance

def gaussian_moments(features, name: str = "features"):
    """Mean and (unbiased) covariance of (N, F) features, float64.

    Needs N ≥ F + 1 samples: fewer cannot give a full-rank covariance estimate, and
    the distance would then measure the sample size more than the distributions.
    """
    f = numpy.asarray(backend.to_host(getattr(features, "data", features)), dtype=numpy.float64)
    if f.ndim != 2:
        raise MetricError(f"{name} must be a 2-D array (samples, features), got shape {f.shape}")
    n, d = f.shape
    if n < d + 1 or n < 2:
        raise MetricError(f"{name}: {n} samples are too few for a covariance estimate of {d} features; "
                          f"at least {max(d + 1, 2)} are needed (F + 1; several times F is advisable)")
    if not numpy.all(numpy.isfinite(f)):
        raise MetricError(f"{name} contain NaN or inf values")
    return f.mean(axis=0), numpy.cov(f, rowvar=False).reshape(d, d)


def _sqrt_psd(s):
    """Symmetric PSD square root by eigendecomposition (negative round-off eigenvalues → 0)."""
    w, v = numpy.linalg.eigh((s + s.T) / 2)
    return (v * numpy.sqrt(numpy.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖m₁−m₂‖² + tr(S₁) + tr(S₂) − 2 tr((S₁^{1/2} S₂ S₁^{1/2})^{1/2})  (float64).

    tr((S₁S₂)^{1/2}) equals the trace of the square root of the *symmetric* PSD
    matrix S₁^{1/2} S₂ S₁^{1/2}, so two symmetric eigendecompositions suffice (no
    general sqrtm, no complex round-off).
    """
    mu1, mu2 = numpy.asarray(mu1, numpy.float64).ravel(), numpy.asarray(mu2, numpy.float64).ravel()
    s1, s2 = numpy.atleast_2d(numpy.asarray(sigma1, numpy.float64)), numpy.atleast_2d(numpy.asarray(sigma2, numpy.float64))
    d = mu1.size
    if mu2.size != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise MetricError(f"Fréchet distance: means of sizes {mu1.size}, {mu2.size} and covariances of "
                          f"shapes {s1.shape}, {s2.shape} do not match")
    root1 = _sqrt_psd(s1)
    m = root1 @ s2 @ root1
    w = numpy.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(numpy.sqrt(numpy.clip(w, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + numpy.trace(s1) + numpy.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_features(real, generated) -> float:
    """Fréchet distance between Gaussians fitted to two (N, F) feature arrays."""
    m1, s1 = gaussian_moments(real, "real features")
    m2, s2 = gaussian_moments(generated, "generated features")
    if m1.size != m2.size:
        raise MetricError(f"real and generated features have {m1.size} and {m2.size} dimensions")
    return frechet_distance(m1, s1, m2, s2)


def classifier_features(classifier, images, batch_size: int = 500):
    """(N, F) host float64 features of ``images`` from a minivae classifier (eval, no graph).

    Refuses a classifier trained on another image shape.
    """
    images = numpy.asarray(images)
    shape = tuple(getattr(classifier, "input_shape", ()) or ())
    if shape and tuple(images.shape[1:]) != shape:
        raise MetricError(f"the classifier was trained on images of shape {shape} but these have shape "
                          f"{tuple(images.shape[1:])}; train a classifier on this data set "
                          "(python -m minivae.classifier --dataset ...) and pass it with --classifier")
    with evaluating(classifier):
        return batched_map(classifier.features, images, batch_size=batch_size).astype(numpy.float64)


def variance_loss(real, generated) -> float:
    """V(real) − V(generated), V(X) = mean over features of the variance across samples
    (Asperti 2020, "Variance loss in VAEs"; math.md §4)."""
    def v(a):
        a = numpy.asarray(a, numpy.float64)
        return float(a.reshape(len(a), -1).var(axis=0).mean())
    return v(real) - v(generated)


__all__ = ["DELTA_8BIT", "MetricError", "beta_independent_nll", "classifier_features", "frechet_distance",
           "frechet_distance_features", "gaussian_moments", "iwae_log_likelihood", "iwae_nll",
           "log_normal_interval", "log_normal_tail", "quantisation_levels", "quantise",
           "quantised_normal_log_prob", "refit_sigma",
           "variance_loss"]
