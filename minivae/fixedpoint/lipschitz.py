"""The Lipschitz constraint on the decoder as a projection μ = P·T(μ)
(math.md §7 "Lipschitz constraint"; Taming VAEs App. B).

The penalty Σ_{k,l} s_kl ‖μ_k − μ_l‖², with s_kl = ρ for pairs of cell centres within
a radius r (``local``) or for all pairs (``global``), is added to the per-example
reconstruction term of the β-ELBO. For fixed posteriors W the objective in μ is

    F(μ) = (1/(2σ²N)) Σ_ik W_ik ‖x_i − μ_k‖² + Σ_kl s_kl ‖μ_k − μ_l‖²,

whose gradient (w_k/σ²)(μ_k − T_k) + 2 (L μ)_k vanishes at

    μ = P T,   P = (diag(w) + 2σ² L)⁻¹ diag(w),   w_k = (1/N) Σ_i W_ik,

L the graph Laplacian of s + sᵀ. P has unit row sums (L1 = 0), and ρ = 0 gives P = I.
The global Laplacian is 2ρ(K·I − 11ᵀ), so its system is solved in O(K) by
Sherman–Morrison; the local one (a few neighbours per cell) by conjugate gradients.
"""
from __future__ import annotations

import dataclasses
import math

import numpy

from .. import backend

MODES = ("none", "local", "global")
DEFAULT_RADIUS_CELLS = 1.5   # (choice) local radius in cell spacings: the 8 neighbours


@dataclasses.dataclass(frozen=True)
class LipschitzConstraint:
    """``mode``: 'none' | 'local' | 'global'; ``strength``: ρ ≥ 0; ``radius``: the local
    radius in latent-box units (None: 1.5 cell spacings, i.e. the 8 neighbours)."""
    mode: str = "none"
    strength: float = 0.0
    radius: float | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown Lipschitz mode {self.mode!r}; "
                             f"choose one of: {', '.join(MODES)}")
        if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength)
                and self.strength >= 0):
            raise ValueError(f"the Lipschitz strength ρ must be a finite number >= 0, "
                             f"got {self.strength!r}")
        if self.radius is not None and not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"the Lipschitz radius must be a positive number, got {self.radius!r}")

    @property
    def active(self):
        return self.mode != "none" and self.strength > 0

    def coupling(self, centres):
        """The pair weights s (K, K) on the host: ρ within the radius (or everywhere)."""
        centres = numpy.asarray(centres, dtype=float)
        K = len(centres)
        if self.mode == "global":
            s = numpy.full((K, K), float(self.strength))
        elif self.mode == "local":
            radius = self.radius if self.radius is not None else default_radius(centres)
            dist = numpy.linalg.norm(centres[:, None] - centres[None], axis=2)
            s = numpy.where(dist <= radius * (1 + 1e-9), float(self.strength), 0.0)
        else:
            s = numpy.zeros((K, K))
        numpy.fill_diagonal(s, 0.0)
        if self.mode == "local" and self.strength > 0 and not s.any():
            raise ValueError(f"no two cell centres lie within the Lipschitz radius "
                             f"{self.radius}; use a radius of at least one cell spacing")
        return s

    def bind(self, centres, sigma, dtype=None):
        """A callable ``project(t, w)`` -> P·T for batches t (B, K, D), w (B, K)."""
        return Projector(self, centres, sigma, dtype)


def default_radius(centres):
    """1.5 cell spacings (the spacing is the smallest distance between centres)."""
    c = numpy.asarray(centres, dtype=float)
    dist = numpy.linalg.norm(c[:, None] - c[None], axis=2)
    dist[dist == 0] = numpy.inf
    return DEFAULT_RADIUS_CELLS * float(dist.min())


def laplacian(s):
    """Graph Laplacian of s + sᵀ: diag of the row sums minus the weights."""
    xp = backend.get_array_module(s)
    a = s + s.T
    return xp.diag(a.sum(axis=1)) - a


def projection_matrix(w, lap, sigma):
    """P = (diag(w) + 2σ²L)⁻¹ diag(w) for masses w (..., K): explicit, for inspection
    and tests (the solver applies it without forming it)."""
    xp = backend.get_array_module(w, lap)
    eye = xp.eye(w.shape[-1], dtype=w.dtype)
    system = eye * w[..., None, :] + 2.0 * sigma ** 2 * lap
    return xp.linalg.solve(system, eye * w[..., None, :])


def penalised_objective(x, weights, mu, s, sigma):
    """F(μ) of the module docstring for one decoder: x (N, D), posteriors W (N, K),
    μ (K, D), pair weights s (K, K). P·T is its minimiser in μ for fixed W."""
    d2 = ((x[:, None, :] - mu[None]) ** 2).sum(axis=2)
    pair = ((mu[:, None, :] - mu[None]) ** 2).sum(axis=2)
    return (weights * d2).sum() / (2.0 * sigma ** 2 * x.shape[0]) + (s * pair).sum()


class Projector:
    """Applies μ = P·T to a batch without forming P (see module docstring).

    global: Sherman–Morrison, O(K). local: the system (diag(w) + 2σ²L) μ = w ⊙ T is
    symmetric positive definite and sparse (a few neighbours per cell), so it is solved
    by Jacobi-preconditioned conjugate gradients on neighbour lists, warm-started at
    ``guess`` (the current μ), to a relative residual of ``rtol`` — 1e-10 in float64,
    1e-5 in float32 — each β stopping on its own.
    """

    def __init__(self, constraint, centres, sigma, dtype=None):
        self.constraint = constraint
        self.sigma = float(sigma)
        self.mode = constraint.mode if constraint.active else "none"
        xp = backend.xp()
        dtype = numpy.dtype(dtype or backend.default_dtype())
        K = len(centres)
        self.rtol = 1e-10 if dtype == numpy.float64 else 1e-5
        if self.mode == "global":
            self.c = 4.0 * self.sigma ** 2 * float(constraint.strength)   # 2σ²·2ρ
            self.K = K
        elif self.mode == "local":
            a = constraint.coupling(centres)
            a = a + a.T                                     # L = diag(a·1) − a
            width = int((a > 0).sum(axis=1).max())
            order = numpy.argsort(a <= 0, axis=1, kind="stable")[:, :width]   # neighbours first
            weights = numpy.take_along_axis(a, order, axis=1)  # 0 where padded
            scale = 2.0 * self.sigma ** 2
            self.neighbours = xp.asarray(order)
            self.weights = xp.asarray(scale * weights[:, :, None], dtype=dtype)
            self.degree = xp.asarray(scale * a.sum(axis=1), dtype=dtype)

    def __call__(self, t, w, guess=None):
        if self.mode == "none":
            return t
        if self.mode == "global":
            # M = diag(d) − c 11ᵀ with d = w + cK: Sherman–Morrison
            d = w + self.c * self.K
            rhs = w[..., None] * t                                  # diag(w) T
            y = rhs / d[..., None]
            z = 1.0 / d
            # 1 − c Σ 1/d_k written as Σ_k w_k / (K d_k) > 0 (no cancellation)
            denom = (w / (self.K * d)).sum(axis=-1)
            return y + (self.c * z / denom[..., None])[..., None] * y.sum(axis=-2, keepdims=True)
        return self._conjugate_gradients(t, w, t if guess is None else guess)

    def _system(self, v, w):
        """(diag(w) + 2σ²L) v for v (B, K, D), through the neighbour lists."""
        pulled = (v[:, self.neighbours] * self.weights).sum(axis=2)
        return (w + self.degree)[..., None] * v - pulled

    def _conjugate_gradients(self, t, w, guess):
        xp = backend.get_array_module(t)
        b = w[..., None] * t
        x = guess.astype(t.dtype, copy=True)
        inv_diag = (1.0 / (w + self.degree))[..., None]
        r = b - self._system(x, w)
        z = r * inv_diag
        p = z.copy()
        rz = (r * z).sum(axis=(1, 2))
        goal = self.rtol * xp.sqrt((b * b).sum(axis=(1, 2)))
        active = xp.sqrt((r * r).sum(axis=(1, 2))) > goal
        for _ in range(4 * t.shape[1]):
            if not bool(active.any()):
                break
            q = self._system(p, w)
            pq = (p * q).sum(axis=(1, 2))
            alpha = xp.where(active, rz / xp.where(active, pq, 1.0), 0.0)[:, None, None]
            x += alpha * p
            r -= alpha * q
            active &= xp.sqrt((r * r).sum(axis=(1, 2))) > goal   # a β that is done stays put
            z = r * inv_diag
            rz_next = (r * z).sum(axis=(1, 2))
            p = z + (rz_next / xp.where(rz == 0, 1.0, rz))[:, None, None] * p
            rz = rz_next
        return x
