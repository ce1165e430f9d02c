"""Latent-space diagnostics of Asperti's papers (math.md §5).

For an encoder over a data set X, per latent variable j:

* variance law: Var_X[μ_j(X)] + E_X[σ_j²(X)] ≈ 1 (the aggregate posterior's first
  two moments match the prior N(0, 1));
* inactive (collapsed) variable: Var_X[μ_j] < threshold (0.05) -- such variables
  also show E_X[σ_j²] ≈ 1;
* KL per variable: E_X of the per-dimension KL term;
* reconstruction gain (our definition, as Asperti's blog describes it): the MSE of
  decode(μ with μ_j := 0) minus the MSE of decode(μ) -- ≈ 0 for inactive variables;
* marginal KL (Taming VAEs §4.1.1): KL(q(z) || N(0, I)) of the aggregate posterior
  q(z) = (1/N) Σ_i q(z|x_i), Monte-Carlo over z ~ q(z), log q(z) by log-sum-exp
  over the N encoded examples; the *average* KL is E_X KL(q(z|x) || p).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy

from ..nn.evaluation import batched_map, evaluating

INACTIVE_THRESHOLD = 0.05


@dataclass
class LatentStatistics:
    var_mu: numpy.ndarray        # Var_X μ_j
    mean_sigma2: numpy.ndarray   # E_X σ_j²
    mean_mu: numpy.ndarray       # E_X μ_j
    kl_per_dim: numpy.ndarray    # E_X KL_j
    n: int
    threshold: float = INACTIVE_THRESHOLD

    @property
    def variance_law(self) -> numpy.ndarray:
        return self.var_mu + self.mean_sigma2

    @property
    def active(self) -> numpy.ndarray:
        return self.var_mu >= self.threshold

    def summary(self) -> dict:
        """JSON-ready totals and per-variable lists (for report.json)."""
        return {
            "n_examples": int(self.n),
            "inactive_threshold": self.threshold,
            "active_count": int(self.active.sum()),
            "inactive_count": int((~self.active).sum()),
            "latent_dim": int(self.var_mu.size),
            "variance_law_mean": float(self.variance_law.mean()),
            "average_kl": float(self.kl_per_dim.sum()),
            "per_variable": {
                "var_mu": self.var_mu.tolist(), "mean_sigma2": self.mean_sigma2.tolist(),
                "variance_law": self.variance_law.tolist(), "kl": self.kl_per_dim.tolist(),
                "active": self.active.tolist(),
            },
        }


def encode_dataset(model, images, batch_size=500):
    """μ and logvar of every image (host float64 arrays), model in eval mode, no graph."""
    with evaluating(model):
        mu, logvar = batched_map(model.encode, images, batch_size=batch_size)
    return mu.astype(numpy.float64), logvar.astype(numpy.float64)


def latent_statistics(mu, logvar, threshold=INACTIVE_THRESHOLD) -> LatentStatistics:
    """Per-variable statistics from encoded means and log-variances (N, k)."""
    mu, logvar = numpy.asarray(mu, numpy.float64), numpy.asarray(logvar, numpy.float64)
    sigma2 = numpy.exp(logvar)
    kl = 0.5 * (mu ** 2 + sigma2 - logvar - 1.0)
    return LatentStatistics(var_mu=mu.var(axis=0), mean_sigma2=sigma2.mean(axis=0), mean_mu=mu.mean(axis=0),
                            kl_per_dim=kl.mean(axis=0), n=len(mu), threshold=threshold)


def model_latent_statistics(model, images, batch_size=500, threshold=INACTIVE_THRESHOLD) -> LatentStatistics:
    return latent_statistics(*encode_dataset(model, images, batch_size), threshold=threshold)


def reconstruction_gain(model, images, mu=None, batch_size=500) -> numpy.ndarray:
    """Per latent j: MSE(decode(μ with μ_j := 0)) − MSE(decode(μ)), MSE per element over ``images``.

    ``mu`` (N, k) may be passed when already encoded. Costs k + 1 decoder passes.
    """
    images = numpy.asarray(images)
    if mu is None:
        mu, _ = encode_dataset(model, images, batch_size)
    k = mu.shape[1]
    sq = numpy.zeros(k + 1)  # [0]: all of μ; [j + 1]: μ_j zeroed
    with evaluating(model):
        for j in range(-1, k):
            mj = mu.copy()
            if j >= 0:
                mj[:, j] = 0.0
            x_hat = batched_map(model.decode, mj, batch_size=batch_size)
            sq[j + 1] = float(((images.astype(numpy.float64) - x_hat) ** 2).sum())
    mse = sq / images.size
    return mse[1:] - mse[0]


def log_aggregate_posterior(z, mu, logvar, chunk=2048) -> numpy.ndarray:
    """log q(z) = logsumexp_i log N(z; μ_i, diag σ_i²) − log N for each row of z (float64).

    The Gaussian exponent Σ_j (z_j − μ_ij)²/σ_ij² is expanded into three matrix products,
    so the cost is one (M, k) × (k, N) GEMM per term instead of an (M, N, k) tensor.
    """
    z = numpy.asarray(z, numpy.float64)
    mu, logvar = numpy.asarray(mu, numpy.float64), numpy.asarray(logvar, numpy.float64)
    prec = numpy.exp(-logvar)                                   # (N, k)
    const = -0.5 * ((mu * mu * prec).sum(1) + logvar.sum(1) + mu.shape[1] * math.log(2 * math.pi))
    out = numpy.empty(len(z))
    for start in range(0, len(z), chunk):
        zc = z[start:start + chunk]
        log_n = -0.5 * (zc * zc) @ prec.T + zc @ (mu * prec).T + const   # (M, N)
        m = log_n.max(axis=1, keepdims=True)
        out[start:start + chunk] = (m[:, 0] + numpy.log(numpy.exp(log_n - m).sum(axis=1)))
    return out - math.log(len(mu))


def marginal_kl(mu, logvar, n_samples=2000, n_data=None, seed=0) -> dict:
    """KL(q(z) || N(0, I)) of the aggregate posterior of the encoded data (Taming VAEs §4.1.1).

    ``n_data`` examples (all by default; a random subset otherwise) define q(z);
    ``n_samples`` draws z ~ q(z) (a random example, then z ~ q(z|x_i)) estimate
    E_q[log q(z) − log p(z)]. Returns the estimate, its standard error and the N used.
    """
    mu, logvar = numpy.asarray(mu, numpy.float64), numpy.asarray(logvar, numpy.float64)
    gen = numpy.random.default_rng(seed)
    if n_data is not None and n_data < len(mu):
        pick = gen.choice(len(mu), size=int(n_data), replace=False)
        mu, logvar = mu[pick], logvar[pick]
    idx = gen.integers(0, len(mu), size=int(n_samples))
    z = mu[idx] + numpy.exp(0.5 * logvar[idx]) * gen.standard_normal((int(n_samples), mu.shape[1]))
    log_p = -0.5 * (z * z + math.log(2 * math.pi)).sum(1)
    diff = log_aggregate_posterior(z, mu, logvar) - log_p
    return {"marginal_kl": float(diff.mean()),
            "marginal_kl_stderr": float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None,
            "n_data": int(len(mu)), "n_samples": int(n_samples)}


__all__ = ["LatentStatistics", "encode_dataset", "latent_statistics", "log_aggregate_posterior",
           "marginal_kl", "model_latent_statistics", "reconstruction_gain", "asdict"]
