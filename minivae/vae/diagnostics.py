"""Latent-space diagnostics of Asperti's papers (math.md §5).

For an encoder over a data set X, per latent variable j:

* variance law: Var_X[μ_j(X)] + E_X[σ_j²(X)] ≈ 1 (the aggregate posterior's first
  two moments match the prior N(0, 1));
* inactive (collapsed) variable: Var_X[μ_j] < threshold (0.05) -- such variables
  also show E_X[σ_j²] ≈ 1;
* KL per variable: E_X of the per-dimension KL term.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy

from .. import backend
from ..autograd import Tensor, no_grad

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
    was_training = model.training
    model.eval()
    mus, logvars = [], []
    try:
        with no_grad():
            for start in range(0, len(images), batch_size):
                x = Tensor(backend.to_device(images[start:start + batch_size]))
                mu, logvar = model.encode(x)
                mus.append(backend.to_host(mu.data).astype(numpy.float64))
                logvars.append(backend.to_host(logvar.data).astype(numpy.float64))
    finally:
        model.train(was_training)
    return numpy.concatenate(mus), numpy.concatenate(logvars)


def latent_statistics(mu, logvar, threshold=INACTIVE_THRESHOLD) -> LatentStatistics:
    """Per-variable statistics from encoded means and log-variances (N, k)."""
    mu, logvar = numpy.asarray(mu, numpy.float64), numpy.asarray(logvar, numpy.float64)
    sigma2 = numpy.exp(logvar)
    kl = 0.5 * (mu ** 2 + sigma2 - logvar - 1.0)
    return LatentStatistics(var_mu=mu.var(axis=0), mean_sigma2=sigma2.mean(axis=0), mean_mu=mu.mean(axis=0),
                            kl_per_dim=kl.mean(axis=0), n=len(mu), threshold=threshold)


def model_latent_statistics(model, images, batch_size=500, threshold=INACTIVE_THRESHOLD) -> LatentStatistics:
    return latent_statistics(*encode_dataset(model, images, batch_size), threshold=threshold)


__all__ = ["LatentStatistics", "encode_dataset", "latent_statistics", "model_latent_statistics", "asdict"]
