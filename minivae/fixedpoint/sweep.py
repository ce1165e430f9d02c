"""β sweeps: the order parameter E(β), its derivatives in log β and the critical
temperatures (math.md §7; Taming VAEs §3.2, Fig. 2 bottom).

Critical temperatures are the highest peaks (interior local maxima) of
|d²E/d(log β)²| over a log-spaced β grid, top 3 by height by default. The
derivatives are second-order finite differences on the (possibly non-uniform)
log β grid (``numpy.gradient``, applied twice), so d²E at index i depends on E at
i−2 … i+2 (its *stencil*).

A β stopped by the iteration cap has no fixed point, only the μ where the iteration
stopped, and its E is not E(β). A critical β whose stencil holds such a β is kept in
the list but flagged ``uncertain``, with the reason (which β did not converge): its
peak may be an artefact of unfinished iterations, or a real transition shifted.
"""
from __future__ import annotations

import dataclasses
import math

import numpy

from .solver import FixedPoints, check_points, check_sigma, solve

DEFAULT_SPAN = (1e-3, 10.0)   # (choice) default grid: β_c·1e-3 … β_c·10, β_c = λ_max(C)/σ²


@dataclasses.dataclass
class Sweep:
    """What :func:`sweep` returns (host arrays): the grid, E(β), dE/dlogβ,
    d²E/dlogβ², the critical β (highest first) with their indices and peak heights,
    β_c = λ_max(C)/σ² of the data (where the collapsed state turns stable), and the
    :class:`~minivae.fixedpoint.solver.FixedPoints` (fixed points, trajectories)."""
    betas: numpy.ndarray
    sigma: float
    energy: numpy.ndarray
    d_energy: numpy.ndarray
    d2_energy: numpy.ndarray
    critical_indices: numpy.ndarray
    critical_betas: numpy.ndarray
    critical_heights: numpy.ndarray
    beta_collapse: float
    fixed_points: FixedPoints
    critical_uncertain: numpy.ndarray = None
    critical_reasons: list = None

    @property
    def converged(self):
        """(n,) whether each β reached ‖Δμ‖ < tol (False: stopped by the cap)."""
        return self.fixed_points.converged

    @property
    def n_converged(self):
        return int(self.fixed_points.converged.sum())

    def summary(self):
        """A JSON-serialisable dict of the sweep (no fixed points or trajectories)."""
        fp = self.fixed_points
        critical = [{"beta": float(self.betas[i]),
                     "tau": float(2.0 * self.betas[i] * self.sigma ** 2),
                     "height": float(h), "uncertain": bool(u), "reason": r}
                    for i, h, u, r in zip(self.critical_indices, self.critical_heights,
                                          self.critical_uncertain, self.critical_reasons)]
        return {
            "init": fp.init,
            "n_beta": len(self.betas),
            "n_converged": self.n_converged,
            "sigma": self.sigma,
            "beta": self.betas.tolist(),
            "energy": self.energy.tolist(),
            "dE_dlogbeta": self.d_energy.tolist(),
            "d2E_dlogbeta2": self.d2_energy.tolist(),
            "critical_betas": self.critical_betas.tolist(),
            "critical_taus": (2.0 * self.critical_betas * self.sigma ** 2).tolist(),
            "critical_heights": self.critical_heights.tolist(),
            "critical": critical,
            "beta_collapse": self.beta_collapse,
            "n_iter": fp.n_iter.tolist(),
            "converged": fp.converged.tolist(),
            "last_step": fp.last_step.tolist(),
        }


def collapse_beta(x, sigma):
    """β_c = λ_max(C)/σ² (math.md §7): above it the collapsed state is stable."""
    x = check_points(x)
    sigma = check_sigma(sigma)
    cov = numpy.cov(x.T, bias=True).reshape(x.shape[1], x.shape[1])
    return float(numpy.linalg.eigvalsh(cov).max()) / sigma ** 2


def beta_grid(beta_min, beta_max, n_beta=100):
    """``n_beta`` log-spaced values from ``beta_min`` to ``beta_max`` (inclusive)."""
    for name, value in (("beta_min", beta_min), ("beta_max", beta_max)):
        number = isinstance(value, (int, float, numpy.floating))
        if not (number and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if beta_max < beta_min:
        raise ValueError(f"beta_max ({beta_max}) must not be below beta_min ({beta_min})")
    if isinstance(n_beta, bool) or int(n_beta) != n_beta or n_beta < 1:
        raise ValueError(f"n_beta must be a positive integer, got {n_beta!r}")
    return numpy.geomspace(beta_min, beta_max, int(n_beta))


def log_derivatives(betas, energy):
    """(dE/dlogβ, d²E/dlogβ²) by second-order differences on the log β grid."""
    betas = numpy.asarray(betas, dtype=float)
    energy = numpy.asarray(energy, dtype=float)
    if len(betas) < 3:
        return numpy.zeros_like(energy), numpy.zeros_like(energy)
    log_beta = numpy.log(betas)
    d1 = numpy.gradient(energy, log_beta, edge_order=2)
    return d1, numpy.gradient(d1, log_beta, edge_order=2)


def critical_points(betas, d2_energy, top=3):
    """Indices of the ``top`` highest interior local maxima of |d²E/dlogβ²|, highest
    first (a plateau counts once, at its first point)."""
    h = numpy.abs(numpy.asarray(d2_energy, dtype=float))
    if isinstance(top, bool) or int(top) != top or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    if len(h) < 3:
        return numpy.zeros(0, dtype=int)
    inner = numpy.arange(1, len(h) - 1)
    peak = (h[inner] > h[inner - 1]) & (h[inner] >= h[inner + 1]) & (h[inner] > 0)
    found = inner[peak]
    return found[numpy.argsort(-h[found], kind="stable")][: int(top)]


def stencil(index, n):
    """The grid indices whose E enters d²E/dlogβ² at ``index``: two ``numpy.gradient``
    passes of second order, central inside (index−2 … index+2) and one-sided at the
    two ends (0 … 3 and n−4 … n−1)."""
    lo, hi = max(0, index - 2), min(n - 1, index + 2)
    if index == 0:
        hi = min(n - 1, 3)
    if index == n - 1:
        lo = max(0, n - 4)
    return range(lo, hi + 1)


def uncertainty(betas, converged, indices, n_iter=None):
    """For each critical index: (uncertain, reason) — uncertain when a β of its stencil
    did not converge; the reason names those β (and their iteration counts)."""
    flags, reasons = [], []
    for i in indices:
        bad = [j for j in stencil(int(i), len(betas)) if not converged[j]]
        flags.append(bool(bad))
        if not bad:
            reasons.append(None)
            continue
        listed = ", ".join(f"{betas[j]:.4g}" + ("" if n_iter is None else f" ({n_iter[j]} it)")
                           for j in bad)
        reasons.append(f"not converged (stopped at the iteration cap) at β = {listed}; "
                       f"their E enters d²E/dlogβ² at β = {betas[i]:.4g} (its "
                       f"finite-difference stencil)")
    return numpy.array(flags, dtype=bool), reasons


def sweep(x, betas=None, sigma=1.0, *, beta_min=None, beta_max=None, n_beta=100, top=3,
          **solve_options):
    """Solve the fixed points over a β grid and locate the critical temperatures.

    ``betas`` is an explicit grid (sorted and de-duplicated here: ``record`` indices
    refer to the sorted grid), otherwise ``n_beta``
    log-spaced values from ``beta_min`` to ``beta_max`` (defaults: 1e-3·β_c and
    10·β_c, β_c = λ_max(C)/σ²). Other keywords go to :func:`~minivae.fixedpoint.solve`
    (grid_size, eta, max_iter, tol, lipschitz, dtype, chunk_size, workers, record, …).
    """
    sigma = check_sigma(sigma)
    beta_c = collapse_beta(x, sigma)
    if betas is None:
        scale = beta_c if beta_c > 0 else 1.0 / sigma ** 2   # a single point has C = 0
        beta_min = DEFAULT_SPAN[0] * scale if beta_min is None else beta_min
        beta_max = DEFAULT_SPAN[1] * scale if beta_max is None else beta_max
        betas = beta_grid(beta_min, beta_max, n_beta)
    else:
        betas = numpy.unique(numpy.asarray(betas, dtype=float))   # sorted, no repeats
    result = solve(x, betas, sigma, **solve_options)
    d1, d2 = log_derivatives(result.betas, result.energy)
    peaks = critical_points(result.betas, d2, top)
    flags, reasons = uncertainty(result.betas, result.converged, peaks, result.n_iter)
    return Sweep(betas=result.betas, sigma=sigma, energy=result.energy, d_energy=d1,
                 d2_energy=d2, critical_indices=peaks, critical_betas=result.betas[peaks],
                 critical_heights=numpy.abs(d2[peaks]), beta_collapse=beta_c,
                 fixed_points=result, critical_uncertain=flags, critical_reasons=reasons)
