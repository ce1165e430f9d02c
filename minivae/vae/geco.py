"""GECO: constrained optimisation of a VAE (Rezende & Viola 2018, "Taming VAEs", §3.4,
Algorithm 1; math.md §3).

Minimise E[KL] subject to E[C_j(x, x̂)] ≤ 0 for each constraint j, with Lagrange
multipliers λ_j ≥ 0 (a vector λ when several constraints are given, the paper's
Lagrangian L = KL + λᵀC):

    t = 0:  λ = λ₀;  C_ma = C_batch
    t > 0:  C_ma = α · C_ma + (1 − α) · C_batch
    C_t = C_batch + stop_gradient(C_ma − C_batch)     value C_ma, gradient of C_batch
    loss = KL + Σ_j λ_j · C_t,j     (gradient step with λ_{t−1})
    then   log λ ← clip(log λ + η · C_ma / s,  log λ_min, log λ_max)

The last line is the default dual controller ``alg1``; ``controller="warm"`` or ``"pid"``
(or a :class:`~minivae.vae.geco_control.Controller`) replaces it, see
:mod:`minivae.vae.geco_control` and math.md §3. ``steps_at_bound`` counts, per
constraint, the steps whose λ sat on λ_min or λ_max (logged as ``lambda_at_bound``).

λ lives in log space, so it can neither overflow nor turn negative; C_ma, log λ and
the step counter are the objective's state (saved in checkpoints, restored on
--resume, so a resumed run follows the same dual trajectory). ``loss`` never changes
the state (the test-set evaluation calls it too): ``after_step`` commits the moving
average from the logged C_batch, then moves λ.

Logged terms: ``kl``, ``c_batch``, ``c_ma``, ``lambda`` (lists with several
constraints), ``loss``, ``rec`` = ‖x − x̂‖² per example (the paper's RE quantity),
``mse`` = rec / D, and ``nll`` = −log N(x; x̂, γ*I) at the maximum-likelihood decoder
variance γ* = mse (math.md §2.3), a reconstruction NLL independent of λ that places
GECO and β-VAE runs on the same information plane; ``gamma`` = that γ*.
Relation to β-VAE (math.md §3): with RE, λ = D/(2βγ) -- GECO is a β-VAE whose β/γ is
tuned on line to meet the tolerance.
"""
from __future__ import annotations

import dataclasses
import math

import numpy

from .. import ops
from ..autograd import Tensor
from ..settings import between, each, non_empty, positive, setting
from .constraints import CONSTRAINTS, Constraint
from .distributions import kl_diag_gaussian, squared_error
from .geco_control import CONTROLLERS, at_bound, make_controller, update_log_lambda
from .objective import Objective
from .objective import mean_item as _mean_item

DEFAULT_ALPHA, DEFAULT_ETA = 0.99, 0.01
DEFAULT_LAMBDA_INIT, DEFAULT_LAMBDA_MIN, DEFAULT_LAMBDA_MAX = 1.0, 1e-6, 1e6


def moving_average_estimate(c_batch: Tensor, c_ma: float) -> Tensor:
    """C_t = C_batch + stop_gradient(C_ma − C_batch): the value of C_ma, the gradient of C_batch."""
    return c_batch + (float(c_ma) - float(c_batch.data))


class GECO(Objective):
    """The GECO Lagrangian for one or more :class:`~minivae.vae.constraints.Constraint`."""

    name = "geco"

    def __init__(self, constraints, alpha=DEFAULT_ALPHA, eta=DEFAULT_ETA, scale=None,
                 lambda_init=None, lambda_min=DEFAULT_LAMBDA_MIN, lambda_max=DEFAULT_LAMBDA_MAX,
                 controller="alg1"):
        """``lambda_init`` None: the controller's λ₀ (alg1: 1; warm, pid: the β-VAE's λ_β); a number: that λ₀."""
        constraints = [constraints] if isinstance(constraints, Constraint) else list(constraints)
        if not constraints or not all(isinstance(c, Constraint) for c in constraints):
            raise ValueError("GECO needs at least one constraint (re, fre, pncc or cla)")
        n = len(constraints)
        if not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"geco: the moving-average factor alpha must lie in [0, 1), got {alpha}")
        if not (float(eta) > 0 and math.isfinite(float(eta))):
            raise ValueError(f"geco: the dual step eta must be positive, got {eta}")
        self.controller = make_controller(controller, eta=eta)
        self.explicit_init = lambda_init is not None
        lambda_init = DEFAULT_LAMBDA_INIT if lambda_init is None else lambda_init
        deferred = not self.explicit_init and self.controller.defers_lambda0   # warm, pid: λ₀ from D later
        if not (0 < float(lambda_min) <= float(lambda_max) < math.inf
                and (deferred or float(lambda_min) <= float(lambda_init) <= float(lambda_max))):
            raise ValueError(f"geco: need 0 < lambda_min <= lambda_init <= lambda_max < inf, got "
                             f"lambda_min={lambda_min}, lambda_init={lambda_init}, lambda_max={lambda_max}")
        if scale is None:
            scale = [c.default_scale for c in constraints]
        scale = [float(s) for s in (scale if isinstance(scale, (list, tuple)) else [scale] * n)]
        if len(scale) != n or not all(s > 0 and math.isfinite(s) for s in scale):
            raise ValueError(f"geco: the normaliser s (--geco-scale) must be one positive number or one per "
                             f"constraint ({n}), got {scale}")
        self.constraints = constraints
        self.alpha, self.eta = float(alpha), float(eta)
        self.scale = numpy.array(scale, dtype=numpy.float64)
        self.lambda_init = float(lambda_init)
        self.log_min, self.log_max = math.log(float(lambda_min)), math.log(float(lambda_max))
        self.log_lambda = numpy.clip(numpy.full(n, math.log(self.lambda_init)), self.log_min, self.log_max)
        self.c_ma = numpy.zeros(n)
        self.step = 0
        self.controller.bind(n, self.scale, self.log_min, self.log_max)
        self.steps_at_bound = numpy.zeros(n, dtype=numpy.int64)

    # -- hyperparameters (the run layer makes flags and config keys of them) --------------
    @dataclasses.dataclass
    class Params:
        constraint: list = setting(["re"], "constraint(s), comma separated for a vector λ", kind="strs",
                                   choices=tuple(CONSTRAINTS), check=non_empty)
        kappa: list = setting(None, "tolerance(s) κ, one per constraint: per-pixel RMS error for re/fre "
                              "(e.g. 0.1), target correlation/accuracy in (0,1) for pncc/cla (e.g. 0.9) (default: none, required)",
                              kind="floats", optional=True)
        geco_alpha: float = setting(DEFAULT_ALPHA, "moving-average factor α of C_ma", kind="float",
                                    check=between(0, 1, open_hi=True))
        geco_eta: float = setting(DEFAULT_ETA, "dual step η of the log λ update", kind="float", check=positive)
        geco_scale: list = setting(None, "normaliser s of the λ update, one or one per constraint "
                                   "(default κ² for re/fre, 1 − κ for pncc/cla)", kind="floats",
                                   check=each(positive), optional=True)
        geco_controller: str = setting("alg1", "the dual update of λ: alg1 (Rezende & Viola's Algorithm 1), warm "
                                       "(λ₀ of the equivalent β-VAE, symmetric clipped step), pid (PI on log λ "
                                       "with anti-windup); math.md §3", kind="str", choices=tuple(CONTROLLERS))
        lambda_init: float = setting(None, "initial λ (default: the controller's own: alg1 1, warm D/(2s), "
                                     "pid D/(2√s))", kind="float", check=positive, optional=True)
        lambda_min: float = setting(DEFAULT_LAMBDA_MIN, "lower bound of λ", kind="float", check=positive)
        lambda_max: float = setting(DEFAULT_LAMBDA_MAX, "upper bound of λ", kind="float", check=positive)
        classifier: str = setting(None, "cla: folder or .npz of a classifier from python -m minivae.classifier "
                                  "(default runs/classifier-<dataset>)", kind="str", optional=True)

    @classmethod
    def resolve_params(cls, params):
        """Check κ against the constraints and fill the default normaliser s (math.md §3)."""
        names = params.constraint
        if params.kappa is None:
            raise ValueError(f"geco needs a tolerance --kappa for each constraint ({', '.join(names)}): "
                             "e.g. --kappa 0.1 for re/fre (per-pixel RMS error), 0.9 for pncc/cla")
        if len(params.kappa) != len(names):
            raise ValueError(f"geco: {len(names)} constraint(s) ({', '.join(names)}) but {len(params.kappa)} "
                             f"kappa value(s) ({', '.join(map(str, params.kappa))}); give one kappa per constraint")
        built = [CONSTRAINTS[n](k) if n != "cla" else _ProbeCLA(k) for n, k in zip(names, params.kappa)]
        scale = params.geco_scale or [c.default_scale for c in built]
        if len(scale) == 1 and len(names) > 1:
            scale = scale * len(names)
        if len(scale) != len(names):
            raise ValueError(f"geco: the normaliser s (--geco-scale) must be one positive number or one per "
                             f"constraint ({len(names)}), got {scale}")
        if params.classifier is not None and "cla" not in names:
            raise ValueError("--classifier is used only by the cla constraint; add cla to --constraint "
                             "or drop --classifier")
        init = params.lambda_min if params.lambda_init is None else params.lambda_init
        if not params.lambda_min <= init <= params.lambda_max:
            raise ValueError(f"geco: need lambda_min <= lambda_init <= lambda_max, got lambda_min="
                             f"{params.lambda_min}, lambda_init={params.lambda_init}, lambda_max={params.lambda_max}")
        if params.lambda_init is None and params.geco_controller == "alg1":
            params = dataclasses.replace(params, lambda_init=DEFAULT_LAMBDA_INIT)   # recorded, not implied
        return dataclasses.replace(params, geco_scale=[float(v) for v in scale])

    @classmethod
    def from_params(cls, params, classifier=None, **context):
        """Build from resolved ``Params``; ``classifier`` is the loaded model CLA needs."""
        built = []
        for name, kappa in zip(params.constraint, params.kappa):
            if name == "cla":
                if classifier is None:
                    raise ValueError("constraint cla needs a trained classifier model (the run layer loads "
                                     "it from --classifier; in Python pass classifier=MODEL)")
                built.append(CONSTRAINTS[name](kappa, classifier))
            else:
                built.append(CONSTRAINTS[name](kappa))
        return cls(built, alpha=params.geco_alpha, eta=params.geco_eta, scale=params.geco_scale,
                   lambda_init=params.lambda_init, lambda_min=params.lambda_min, lambda_max=params.lambda_max,
                   controller=params.geco_controller)

    # -- the objective -----------------------------------------------------------------
    @property
    def needs_labels(self) -> bool:
        return any(c.needs_labels for c in self.constraints)

    @property
    def lambdas(self) -> numpy.ndarray:
        return numpy.exp(self.log_lambda)

    def _moving_average(self, c_batch) -> numpy.ndarray:
        c_batch = numpy.asarray(c_batch, dtype=numpy.float64)
        return c_batch.copy() if self.step == 0 else self.alpha * self.c_ma + (1 - self.alpha) * c_batch

    def loss(self, x, out, labels=None):
        """KL + Σ_j λ_j·C_t,j (value C_ma, gradient of C_batch); the state is not changed."""
        kl = kl_diag_gaussian(out.mu, out.logvar)
        c_batch = [ops.mean(c(x, out.x_hat, labels)) for c in self.constraints]
        c_batch_values = [float(c.data) for c in c_batch]
        c_ma = self._moving_average(c_batch_values)
        d = math.prod(x.shape[1:])
        if self.step == 0 and not self.explicit_init:   # warm/pid's λ₀ depends on D; the same value at every call
            initial = self.controller.initial_log_lambda(self.constraints, d)
            if initial is not None:
                self.log_lambda = numpy.asarray(initial, dtype=numpy.float64)
        lambdas = self.lambdas
        loss = ops.mean(kl)
        for c, ma, lam in zip(c_batch, c_ma, lambdas):
            loss = loss + moving_average_estimate(c, ma) * float(lam)
        sq = squared_error(x, out.x_hat)
        rec = _mean_item(sq)
        mse = rec / d
        single = len(self.constraints) == 1
        pick = (lambda v: float(v[0])) if single else (lambda v: [float(a) for a in v])
        pick_bool = (lambda v: bool(v[0])) if single else (lambda v: [bool(a) for a in v])
        terms = {"loss": _mean_item(loss), "kl": _mean_item(kl), "rec": rec, "mse": mse,
                 "nll": 0.5 * d * (math.log(2 * math.pi * max(mse, 1e-300)) + 1.0), "gamma": mse,
                 "c_batch": pick(c_batch_values), "c_ma": pick(c_ma), "lambda": pick(lambdas),
                 "lambda_at_bound": pick_bool(at_bound(self.log_lambda, self.log_min, self.log_max))}
        terms["neg_elbo"] = terms["nll"] + terms["kl"]  # −ELBO under N(x̂, γ*I), β = 1: comparable across objectives
        return loss, terms

    def after_step(self, terms: dict) -> None:
        """Commit C_ma with this step's C_batch, count a step spent at a bound, then the controller's λ update."""
        c_batch = numpy.atleast_1d(numpy.asarray(terms["c_batch"], dtype=numpy.float64))
        if c_batch.shape != self.c_ma.shape:
            raise ValueError(f"geco: after_step got {c_batch.size} constraint value(s), expected {self.c_ma.size}")
        self.c_ma = self._moving_average(c_batch)
        self.steps_at_bound += at_bound(self.log_lambda, self.log_min, self.log_max)   # the λ this step used
        self.log_lambda = numpy.asarray(self.controller.update(self.log_lambda, self.c_ma), dtype=numpy.float64)
        self.step += 1

    # -- checkpointed state --------------------------------------------------------------
    def state(self) -> dict:
        return {"log_lambda": [float(v) for v in self.log_lambda], "c_ma": [float(v) for v in self.c_ma],
                "step": int(self.step), "constraints": [c.name for c in self.constraints],
                "lambda": [float(v) for v in self.lambdas], "steps_at_bound": self.steps_at_bound.tolist(),
                "controller": {"name": self.controller.name, **self.controller.state()}}

    def load_state(self, state: dict) -> None:
        if not state:
            return
        n = len(self.constraints)
        names = state.get("constraints")
        if names is not None and list(names) != [c.name for c in self.constraints]:
            raise ValueError(f"geco: the checkpoint holds the state of constraints {list(names)}, this run has "
                             f"{[c.name for c in self.constraints]}")
        log_lambda = numpy.asarray(state["log_lambda"], dtype=numpy.float64).reshape(-1)
        c_ma = numpy.asarray(state["c_ma"], dtype=numpy.float64).reshape(-1)
        if log_lambda.size != n or c_ma.size != n:
            raise ValueError(f"geco: the checkpoint holds {log_lambda.size} multiplier(s), this run has {n}")
        controller = dict(state.get("controller") or {"name": "alg1"})   # older checkpoints: Algorithm 1
        saved = controller.pop("name")
        if saved != self.controller.name:
            raise ValueError(f"geco: the checkpoint was trained with the {saved!r} controller, this run has "
                             f"{self.controller.name!r}; resume with --geco-controller {saved}")
        self.controller.load_state(controller)
        self.steps_at_bound = numpy.asarray(state.get("steps_at_bound", [0] * n), dtype=numpy.int64).reshape(n)
        self.log_lambda, self.c_ma, self.step = log_lambda, c_ma, int(state["step"])

    def __repr__(self):
        return (f"GECO({self.constraints}, alpha={self.alpha}, eta={self.eta}, scale={self.scale.tolist()}, "
                f"lambda={self.lambdas.tolist()}, controller={self.controller!r})")


class _ProbeCLA(Constraint):
    """CLA's κ checks and default scale without a classifier (used while resolving params)."""
    name = "cla"
    kind = "similarity"


__all__ = ["GECO", "moving_average_estimate", "update_log_lambda"]
