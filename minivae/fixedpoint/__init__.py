"""Fixed points of high-capacity β-VAEs (math.md §7; Taming VAEs §3.1–3.3, App. A–C).

Plain arrays on the active backend (NumPy or CuPy), no autograd:

* :func:`solve` — the coupled fixed-point iteration for many β at once;
* :func:`sweep` — E(β) on a log-spaced grid, its log-β derivatives and the critical β;
* :class:`LipschitzConstraint` — the local/global constraint as the projection μ = P·T(μ);
* :mod:`~minivae.fixedpoint.datasets` — the seeded 2-D data sets of the figures.

``python -m minivae.fixedpoint --help`` runs a sweep from the command line.
"""
from . import datasets
from .lipschitz import LipschitzConstraint, laplacian, penalised_objective, projection_matrix
from .solver import FixedPoints, cell_centres, initial_mu, solve
from .kernel import energy, log_posterior, transition
from .sweep import Sweep, beta_grid, collapse_beta, critical_points, log_derivatives, sweep

__all__ = ["FixedPoints", "LipschitzConstraint", "Sweep", "beta_grid", "cell_centres",
           "collapse_beta", "critical_points", "datasets", "energy", "initial_mu", "laplacian",
           "log_derivatives", "log_posterior", "penalised_objective", "projection_matrix",
           "solve", "sweep", "transition"]
