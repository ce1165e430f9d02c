"""Densities and divergences of the ELBO (math.md §1), per example.

All functions take Tensors of shape (B, ...) and return a Tensor of shape (B,)
(or (B, k) with ``per_dim=True``): the batch mean is taken by the objective.
"""
from __future__ import annotations

import math

from .. import backend, ops
from ..autograd import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def _flat(x):
    return ops.reshape(x, (x.shape[0], -1)) if x.ndim > 2 else x


def reparameterize(mu, logvar, eps=None):
    """z = μ + exp(½ logvar) ⊙ ε, ε ~ N(0, I) (Kingma & Welling 2013, eq. 10).

    ``eps`` may be given (an array or Tensor of μ's shape) so that the whole loss is a
    deterministic function of the parameters -- the gradient checks inject it.
    """
    if eps is None:
        eps = backend.rng().standard_normal(mu.shape).astype(mu.dtype)
    eps = eps if isinstance(eps, Tensor) else Tensor(eps)
    if eps.shape != mu.shape:
        raise ValueError(f"reparameterize: eps has shape {eps.shape}, expected {mu.shape}")
    return mu + ops.exp(logvar * 0.5) * eps


def kl_diag_gaussian(mu, logvar, per_dim: bool = False):
    """KL( N(μ, diag σ²) || N(0, I) ) = ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1)  (math.md §1)."""
    per_latent = (mu * mu + ops.exp(logvar) - logvar - 1.0) * 0.5
    return per_latent if per_dim else ops.sum(per_latent, axis=1)


def squared_error(x, x_hat):
    """Σ_d (x_d − x̂_d)² per example."""
    diff = _flat(x) - _flat(x_hat)
    return ops.sum(diff * diff, axis=1)


def gaussian_nll(x, x_hat, gamma=1.0, log_gamma=None):
    """−log N(x; x̂, γI) = Σ_d (x_d − x̂_d)²/(2γ) + (D/2) log(2πγ)  (math.md §1).

    γ is a float or a scalar Tensor. Pass ``log_gamma`` (a Tensor) instead to learn γ
    through its logarithm (Dai & Wipf 2019): then both terms carry gradients.
    """
    D = int(math.prod(x.shape[1:]))
    sq = squared_error(x, x_hat)
    if log_gamma is not None:
        return sq * ops.exp(-log_gamma) * 0.5 + (log_gamma + LOG_2PI) * (D / 2.0)
    if isinstance(gamma, Tensor):
        return sq / (gamma * 2.0) + (ops.log(gamma) + LOG_2PI) * (D / 2.0)
    return sq * (0.5 / gamma) + 0.5 * D * (math.log(gamma) + LOG_2PI)


def bernoulli_nll_from_logits(x, logits):
    """−Σ_d [x_d log σ(l_d) + (1−x_d) log(1−σ(l_d))] = Σ_d [softplus(l_d) − x_d l_d].

    The stable form (math.md §1): never log of a clipped sigmoid.
    """
    logits = _flat(logits)
    return ops.sum(ops.softplus(logits) - _flat(x) * logits, axis=1)


def log_normal_diag(z, mu, logvar):
    """log N(z; μ, diag exp(logvar)), summed over the last axis (IWAE, math.md §6)."""
    diff = z - mu
    return ops.sum((diff * diff * ops.exp(-logvar) + logvar + LOG_2PI) * -0.5, axis=-1)


def log_standard_normal(z):
    """log N(z; 0, I), summed over the last axis."""
    return ops.sum((z * z + LOG_2PI) * -0.5, axis=-1)
