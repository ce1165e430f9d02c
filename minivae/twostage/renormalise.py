"""Renormalisation of second-stage samples (Asperti 2020, "Variance loss in variational
autoencoders"; math.md §4).

The second stage loses variance: its generated codes ẑ have a smaller spread than
the codes the first decoder was trained on. Before decoding, each generated batch
is rescaled toward the moments of the stage-1 aggregate posterior q(z):

* ``scalar`` (the authors' code): one factor per batch,
  ẑ ← ẑ · t / mean_j std_batch(ẑ_j),  t = sqrt(mean_j [Var_X μ_j + E_X σ_j²])
  (the variance-law value, ≈ 1), applied only when the latent-space variance
  loss exceeds ``threshold`` (0.25) × the stage-2 MSE -- "only if there is an
  evident variance loss";
* ``per-dim``: each dimension standardised over the batch, then given the
  aggregate-posterior mean E_X μ_j and variance Var_X μ_j + E_X σ_j²;
* ``off``: the identity.

Batch statistics use the population standard deviation (ddof = 0), as NumPy's
``std`` in the authors' code. Functions work on NumPy or CuPy arrays (no graph).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from ..backend import get_array_module

RENORM_MODES = ("scalar", "per-dim", "off")
SCALAR_THRESHOLD = 0.25  # the authors' "evident variance loss": var_loss / mse > 0.25


@dataclass
class LatentMoments:
    """What renormalisation needs: stage-1 aggregate-posterior moments and stage-2 quality.

    mean_mu, var_mu, mean_sigma2  per latent j over the stage-1 training set
    mse2       per-element MSE of the stage-2 reconstruction of the codes μ
    var_loss2  latent variance loss mean_j Var μ_j − mean_j Var ẑ_j of that reconstruction
    """
    mean_mu: numpy.ndarray
    var_mu: numpy.ndarray
    mean_sigma2: numpy.ndarray
    mse2: float = float("nan")
    var_loss2: float = float("nan")
    threshold: float = SCALAR_THRESHOLD

    def __post_init__(self):
        for name in ("mean_mu", "var_mu", "mean_sigma2"):
            setattr(self, name, numpy.asarray(getattr(self, name), dtype=numpy.float64).reshape(-1))
        if not (self.mean_mu.shape == self.var_mu.shape == self.mean_sigma2.shape):
            raise ValueError("latent moments must all have one value per latent variable")

    @property
    def target_mean(self) -> numpy.ndarray:
        return self.mean_mu

    @property
    def target_var(self) -> numpy.ndarray:
        """Var_X μ_j + E_X σ_j²: the variance of the aggregate posterior in dimension j."""
        return self.var_mu + self.mean_sigma2

    @property
    def scalar_target(self) -> float:
        """t = sqrt(mean_j [Var_X μ_j + E_X σ_j²])."""
        return math.sqrt(float(self.target_var.mean()))

    @property
    def apply_scalar(self) -> bool:
        """The authors' condition: latent variance loss > threshold × stage-2 MSE."""
        return bool(self.var_loss2 > self.threshold * self.mse2)

    def to_json(self) -> dict:
        return {"mean_mu": self.mean_mu.tolist(), "var_mu": self.var_mu.tolist(),
                "mean_sigma2": self.mean_sigma2.tolist(), "mse2": self.mse2, "var_loss2": self.var_loss2,
                "threshold": self.threshold, "scalar_target": self.scalar_target,
                "apply_scalar": self.apply_scalar}

    @classmethod
    def from_json(cls, d: dict) -> "LatentMoments":
        return cls(d["mean_mu"], d["var_mu"], d["mean_sigma2"], float(d["mse2"]), float(d["var_loss2"]),
                   float(d.get("threshold", SCALAR_THRESHOLD)))


def _check_batch(z):
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"renormalisation needs a batch of at least 2 codes (batch, k) to estimate its "
                         f"spread, got shape {tuple(z.shape)}")


def scalar_renormalise(z, target: float):
    """ẑ · t / mean_j std_batch(ẑ_j) (one factor for the whole batch)."""
    _check_batch(z)
    spread = z.std(axis=0).mean()
    if not float(spread) > 0:
        raise ValueError("cannot renormalise a batch whose codes are all identical (zero spread)")
    return z * (target / spread)


def per_dim_renormalise(z, mean, var):
    """(ẑ_j − mean_batch ẑ_j) / std_batch ẑ_j · sqrt(var_j) + mean_j, per dimension."""
    _check_batch(z)
    xp = get_array_module(z)
    mean = xp.asarray(mean, dtype=z.dtype)
    var = xp.asarray(var, dtype=z.dtype)
    std = z.std(axis=0)
    if not bool((std > 0).all()):
        raise ValueError("cannot renormalise per dimension: a dimension of the batch has zero spread")
    return (z - z.mean(axis=0)) / std * xp.sqrt(var) + mean


def renormalise(z, mode: str, moments: LatentMoments | None = None):
    """Apply renormalisation ``mode`` (``scalar`` | ``per-dim`` | ``off``) to a batch of codes."""
    if mode not in RENORM_MODES:
        raise ValueError(f"unknown renormalisation {mode!r}; choose one of: {', '.join(RENORM_MODES)}")
    if mode == "off":
        return z
    if moments is None:
        raise ValueError(f"renormalisation {mode!r} needs the stage-1 latent moments (a trained second stage)")
    if z.ndim == 2 and z.shape[1] != moments.mean_mu.size:
        raise ValueError(f"codes have {z.shape[1]} dimensions but the moments describe {moments.mean_mu.size}")
    if mode == "scalar":
        return scalar_renormalise(z, moments.scalar_target) if moments.apply_scalar else z
    return per_dim_renormalise(z, moments.target_mean, moments.target_var)
