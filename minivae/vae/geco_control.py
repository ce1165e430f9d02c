"""GECO's dual controllers: how log λ follows the constraint (math.md §3, "Dual controllers").

GECO (Rezende & Viola 2018, Algorithm 1) keeps, per constraint j, a smoothed value
C_ma,j of the constraint and a multiplier λ_j = exp(log λ_j) ∈ [λ_min, λ_max]. After
each optimiser step a controller maps (log λ, C_ma) to the next log λ. Notation:
s the normaliser (κ² for RE/FRE, 1 − κ for pNCC/CLA), so e = C_ma / s is the
*relative* violation; since an error cannot go below zero and a similarity cannot
exceed one, e ≥ −1 always, while e can be large and positive early in training.

* ``alg1`` -- Algorithm 1 as published (multiplicative update, ∝ C_ma):

      log λ_t = clip( log λ_{t−1} + η · C_ma,t / s ,  log λ_min, log λ_max )

  A pure integrator of e. Because e ∈ [−1, ∞), λ rises up to many η per step while
  the constraint is violated and falls at most η per step once it holds: an early
  violation that no λ can cure (the network has not learned yet) drives λ to its
  bound, and it takes ≥ (log λ_max − log λ*)/η steps to come back.

* ``warm`` -- start where the equivalent β-VAE sits, and step symmetrically:

      log λ_0 = log λ_β(D) ,   λ_β = D / (2 s)           (RE: D / (2βγ) at γ = κ², β = 1)
      log λ_t = clip( log λ_{t−1} + η · clip(C_ma,t / s, −1, 1) ,  log λ_min, log λ_max )

  For RE (per-pixel mean, a Gaussian decoder) KL + λ·C has the gradient of the
  β-VAE loss (D/(2γ))·mse + β·KL divided by β exactly when λ = D/(2βγ) (math.md §3);
  λ_β is that λ at the decoder variance γ = κ² (the noise level the tolerance names)
  and β = 1. For the other constraints **(choice)** the same scale: at λ_β the
  constraint term is (D/2) · C/s, a Gaussian-log-likelihood-sized weight on the
  relative violation. D (values per example) is read from the first batch.

* ``pid`` -- a PI(D) controller on log λ (Stooke, Achiam & Abbeel 2020, "Responsive
  Safety in Reinforcement Learning by PID Lagrangian Methods", ICML; theirs acts on λ):

      e_t   = clip(C_ma,t / s, −1, 1)
      I_t   = clip( I_{t−1} + e_t ,  I_lo,t , I_hi,t )                     anti-windup
      u_t   = log λ_ref + K_P · e_t + K_I · I_t + K_D · (e_t − e_{t−1})₊
      log λ_t = clip( u_t , log λ_min, log λ_max )
      I_lo,t = (log λ_min − log λ_ref − K_P e_t − K_D (e_t − e_{t−1})₊) / K_I,   I_hi,t likewise with λ_max

  with I_0 = 0, e_0 = e_1, defaults **(choice)** K_P = 0.5, K_I = 0.002, K_D = 0, and
  λ_ref (λ₀ if given) the log-midpoint of a bracket of the multiplier λ* that meets
  the constraint, λ_lo = D/2 ≤ λ* ≤ λ_hi = λ_β = D/(2s):

      λ_ref = √(λ_lo · λ_hi) = D / (2 √s)                     (RE: D/(2κ), the β-VAE at γ = κ)

  λ_hi: a β = 1 VAE with a learned γ settles at γ = its MSE (math.md §2); at a fixed
  γ = κ² above that MSE its MSE stays below κ² (above its stable fixed point MSE(γ) < γ),
  so the constraint holds with slack at λ_β and λ* ≤ λ_β whenever κ² is looser than
  that VAE's MSE -- GECO's use, trading reconstruction for less KL. λ_lo: at γ = 1
  (λ = D/2) the decoder noise exceeds the variance of data in [0, 1] (≤ 1/4), the VAE
  keeps little information and its MSE stays near Var(x), above any κ² that asks for a
  recognisable reconstruction, so λ* ≥ D/2. A heuristic bracket, not a theorem. The midpoint
  is within a factor 1/√s of λ* either way. Started at λ_β (as ``warm``) the controller
  comes from above: on MNIST the early violation, which no λ cures while the network is
  still learning, lifts λ to 1e5, switches on all 16 latents, and it ends 8–10 % above
  the β-VAE frontier after 20 epochs, against 12–17 % below it from the midpoint
  (docs/results.md, issue 11). The integral is clamped so the unclipped output u never
  passes a bound ("integrator clamping"):
  the integral stores no violation the bounded λ could not act on, so when e changes
  sign, λ leaves the bound at once. **Why log λ** (the paper's update is multiplicative
  too): λ spans decades (1 … 1e4 on MNIST) and the constraint answers roughly to the
  *ratio* of λ (for RE the β-VAE's MSE is a smooth function of γ = D/(2βλ), close to
  a power law over the range used), so the loop gain of a PI on log λ with the
  relative violation e is the same at every λ, and λ > 0 needs no projection. On λ
  itself the same gains would be too slow at λ = 1e4 or unstable at λ = 1, as
  d C / d λ scales like 1/λ. With K_P = K_D = 0 and no clip of e, ``pid`` is ``alg1``
  (log λ_ref + K_I·I is the clipped integrator); the derivative acts on increases of the
  violation only (Stooke et al.'s (·)₊) and is off by default (C_ma's increments are noise).

Every controller keeps λ inside [λ_min, λ_max]; :func:`at_bound` says when it sits on
a bound (GECO counts such steps and logs ``lambda_at_bound``).
"""
from __future__ import annotations

import math

import numpy

DEFAULT_PID_GAINS = {"kp": 0.5, "ki": 0.002, "kd": 0.0}


def update_log_lambda(log_lambda, c_ma, eta, scale, log_min, log_max):
    """log λ ← clip(log λ + η · C_ma / s, log λ_min, log λ_max)  (Algorithm 1; math.md §3)."""
    with numpy.errstate(over="ignore"):   # a huge violation gives ±inf, which the clip bounds
        step = eta * numpy.asarray(c_ma, dtype=numpy.float64) / numpy.asarray(scale, dtype=numpy.float64)
    return numpy.clip(numpy.asarray(log_lambda, dtype=numpy.float64) + step, log_min, log_max)


def relative_violation(c_ma, scale, limit=1.0):
    """e = clip(C_ma / s, −limit, limit) (no clip when limit is None)."""
    with numpy.errstate(over="ignore"):
        e = numpy.asarray(c_ma, dtype=numpy.float64) / numpy.asarray(scale, dtype=numpy.float64)
    return e if limit is None else numpy.clip(e, -limit, limit)


def at_bound(log_lambda, log_min, log_max) -> numpy.ndarray:
    """True where λ sits on λ_min or λ_max (the clip returns the bound exactly)."""
    log_lambda = numpy.asarray(log_lambda, dtype=numpy.float64)
    return (log_lambda <= log_min) | (log_lambda >= log_max)


def lambda_bracket(constraint, d: int):
    """(λ_lo, λ_hi) = (D/2, D/(2s)): the bracket of λ* (module docstring); λ_hi is :func:`beta_vae_lambda`."""
    return int(d) / 2.0, beta_vae_lambda(constraint, d)


def bound_warning(names, steps_at_bound, steps: int, lambda_min: float, lambda_max: float):
    """One line for the progress display / report when any λ sat on a bound, else None.

    ``steps_at_bound`` is GECO's per-constraint count; a λ on a bound means the constraint
    no longer steers it (λ_max: the violation is not being cured; λ_min: it is inactive).
    """
    hits = [f"{name} {int(n)} of {int(steps)} steps" for name, n in zip(names, steps_at_bound) if int(n) > 0]
    if not hits:
        return None
    return (f"warning: geco λ sat on its bound [{lambda_min:g}, {lambda_max:g}] ({'; '.join(hits)}); "
            "at the bound λ does not follow the constraint -- see docs/math.md §3 (--geco-controller pid)")


def beta_vae_lambda(constraint, d: int) -> float:
    """λ_β = D / (2 s): the multiplier of the β-VAE (β = 1, γ = κ²) equivalent to the constraint.

    Exact for RE: KL + λ·(mse − κ²) has the gradient of (D/(2γ))·mse + KL at γ = κ².
    FRE, pNCC, CLA **(choice)**: the same scale, λ·C = (D/2)·C/s.
    """
    if int(d) < 1:
        raise ValueError(f"geco: D (values per example) must be >= 1, got {d}")
    return int(d) / (2.0 * float(constraint.default_scale))


class Controller:
    """Base class. GECO calls :meth:`bind` once (the number of constraints, s, bounds),
    :meth:`initial_log_lambda` before its first step, then :meth:`update` after each step."""

    name = ""
    defers_lambda0 = False      # True: initial_log_lambda sets λ₀ from D at the first batch

    def bind(self, n: int, scale, log_min: float, log_max: float) -> None:
        self.n = int(n)
        self.scale = numpy.broadcast_to(numpy.asarray(scale, dtype=numpy.float64), (self.n,)).copy()
        self.log_min, self.log_max = float(log_min), float(log_max)

    def initial_log_lambda(self, constraints, d: int):
        """log λ₀ for a batch of D values per example, or None to keep GECO's λ₀."""
        return None

    def update(self, log_lambda, c_ma) -> numpy.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def _clip(self, log_lambda):
        return numpy.clip(log_lambda, self.log_min, self.log_max)


class Alg1(Controller):
    """Rezende & Viola's Algorithm 1: log λ ← clip(log λ + η C_ma / s)."""

    name = "alg1"

    def __init__(self, eta: float = 0.01):
        self.eta = _positive("eta", eta)

    def update(self, log_lambda, c_ma):
        return update_log_lambda(log_lambda, c_ma, self.eta, self.scale, self.log_min, self.log_max)

    def __repr__(self):
        return f"Alg1(eta={self.eta})"


class _FromBracket(Controller):
    """λ₀ from the bracket [D/2, D/(2s)] of λ* (or a given lambda0), clipped to the bounds."""

    defers_lambda0 = True

    def __init__(self, lambda0=None):
        self.lambda0 = None if lambda0 is None else _positive("lambda0", lambda0)

    def default_lambda0(self, constraint, d):  # pragma: no cover - abstract
        raise NotImplementedError

    def initial_log_lambda(self, constraints, d):
        if self.lambda0 is not None:
            values = [self.lambda0] * len(constraints)
        else:
            values = [self.default_lambda0(c, d) for c in constraints]
        return self._clip(numpy.log(numpy.asarray(values, dtype=numpy.float64)))


class Warm(_FromBracket):
    """β-VAE-equivalent λ₀ and the symmetric step log λ ← clip(log λ + η clip(C_ma/s, −1, 1))."""

    name = "warm"

    def __init__(self, eta: float = 0.01, lambda0=None):
        super().__init__(lambda0)
        self.eta = _positive("eta", eta)

    def default_lambda0(self, constraint, d):
        return beta_vae_lambda(constraint, d)                    # λ_hi = D/(2s)

    def update(self, log_lambda, c_ma):
        e = relative_violation(c_ma, self.scale)
        return self._clip(numpy.asarray(log_lambda, dtype=numpy.float64) + self.eta * e)

    def __repr__(self):
        return f"Warm(eta={self.eta}, lambda0={self.lambda0})"


class PID(_FromBracket):
    """PI(D) on log λ with integrator clamping (module docstring; Stooke et al. 2020)."""

    name = "pid"

    def __init__(self, kp=DEFAULT_PID_GAINS["kp"], ki=DEFAULT_PID_GAINS["ki"], kd=DEFAULT_PID_GAINS["kd"],
                 lambda0=None, clip_error=1.0):
        super().__init__(lambda0)
        self.kp, self.kd = _non_negative("kp", kp), _non_negative("kd", kd)
        self.ki = _positive("ki", ki)
        self.clip_error = None if clip_error is None else _positive("clip_error", clip_error)
        self.integral = self.e_prev = self.log_ref = None

    def default_lambda0(self, constraint, d):
        low, high = lambda_bracket(constraint, d)
        return math.sqrt(low * high)                             # D / (2 √s); RE: D / (2κ)

    def update(self, log_lambda, c_ma):
        e = relative_violation(c_ma, self.scale, self.clip_error)
        if self.log_ref is None:   # the first update: λ_ref is the λ₀ GECO started from
            self.log_ref = numpy.asarray(log_lambda, dtype=numpy.float64).copy()
            self.integral, self.e_prev = numpy.zeros_like(e), e.copy()
        fixed = self.log_ref + self.kp * e + self.kd * numpy.maximum(e - self.e_prev, 0.0)
        with numpy.errstate(over="ignore", invalid="ignore"):
            low, high = (self.log_min - fixed) / self.ki, (self.log_max - fixed) / self.ki
        self.integral = numpy.clip(self.integral + e, low, high)   # anti-windup
        self.e_prev = e
        return self._clip(fixed + self.ki * self.integral)

    def state(self):
        if self.log_ref is None:
            return {}
        return {"integral": self.integral.tolist(), "e_prev": self.e_prev.tolist(), "log_ref": self.log_ref.tolist()}

    def load_state(self, state):
        if not state:
            return
        arrays = [numpy.asarray(state[k], dtype=numpy.float64).reshape(-1) for k in ("integral", "e_prev", "log_ref")]
        if any(a.size != self.n for a in arrays):
            raise ValueError(f"geco pid: the checkpoint holds the state of {arrays[0].size} constraint(s), "
                             f"this run has {self.n}")
        self.integral, self.e_prev, self.log_ref = arrays

    def __repr__(self):
        return f"PID(kp={self.kp}, ki={self.ki}, kd={self.kd}, lambda0={self.lambda0})"


CONTROLLERS = {"alg1": Alg1, "warm": Warm, "pid": PID}


def make_controller(controller, eta: float = 0.01) -> Controller:
    """A controller from its name ("alg1", "warm", "pid") or an instance (returned as is).

    ``eta`` is the step of alg1 and warm; pid has its own gains (DEFAULT_PID_GAINS).
    """
    if isinstance(controller, Controller):
        return controller
    name = str(controller).strip().lower()
    if name not in CONTROLLERS:
        raise ValueError(f"unknown geco controller {controller!r}; choose from: {', '.join(CONTROLLERS)}")
    return PID() if name == "pid" else CONTROLLERS[name](eta=eta)


def _positive(name, value):
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"geco controller: {name} must be a positive number, got {value}")
    return value


def _non_negative(name, value):
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"geco controller: {name} must be a non-negative number, got {value}")
    return value


__all__ = ["Alg1", "CONTROLLERS", "Controller", "DEFAULT_PID_GAINS", "PID", "Warm", "at_bound",
           "beta_vae_lambda", "bound_warning", "lambda_bracket", "make_controller", "relative_violation", "update_log_lambda"]
