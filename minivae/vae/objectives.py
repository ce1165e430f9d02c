"""Training objectives with one interface (math.md §1–2).

An objective turns a batch and the model's :class:`~minivae.vae.models.VAEOutput`
into a scalar loss Tensor plus a dict of logged terms (per example, batch mean,
nats); :meth:`Objective.after_step` runs after each optimiser step (the balanced
γ update, GECO's λ update); :meth:`state_dict` holds what a checkpoint must keep.

Terms always logged: ``loss``, ``rec`` (the reconstruction term as it enters the
loss), ``kl``, ``nll`` (−log p(x|z) with its constants), ``neg_elbo`` (nll + KL, β = 1),
``mse`` (per element), ``gamma``.
"""
from __future__ import annotations

import math

from .. import backend, nn, ops
from ..autograd import Tensor
from .distributions import bernoulli_nll_from_logits, gaussian_nll, kl_diag_gaussian, squared_error

LIKELIHOODS = ("gaussian", "bernoulli")


def _mean_item(t: Tensor) -> float:
    return float(t.data.mean())  # reduced on the device: one scalar crosses


class Objective:
    """Base class: ``loss(x, out) -> (Tensor, terms)``; stateful objectives override the rest."""

    name = "objective"

    def parameters(self) -> list:
        """Trainable scalars the objective owns (learned log γ); optimised with the model."""
        return []

    def loss(self, x: Tensor, out):  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, terms: dict) -> None:
        """Update non-gradient state after the optimiser step (default: nothing)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def _base_terms(self, x, out, kl):
        D = int(math.prod(x.shape[1:]))
        sq = squared_error(x, out.x_hat)
        return sq, {"kl": _mean_item(kl), "mse": _mean_item(sq) / D}


class ELBO(Objective):
    """−ELBO with a fixed decoder variance γ and KL weight β (β-VAE, Higgins et al. 2017):

        loss = E_batch[ −log p(x|z) + β · KL(q(z|x) || N(0, I)) ]          (math.md §1)

    ``likelihood="gaussian"`` uses N(x; x̂, γI) with its constants; ``"bernoulli"``
    the stable logit form (needs a sigmoid-output decoder, data in [0, 1]).
    """

    name = "elbo"

    def __init__(self, gamma: float = 1.0, beta: float = 1.0, likelihood: str = "gaussian"):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of: {', '.join(LIKELIHOODS)}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        if not beta >= 0:
            raise ValueError(f"beta must be non-negative, got {beta}")
        self.gamma, self.beta, self.likelihood = float(gamma), float(beta), likelihood

    def loss(self, x, out):
        kl = kl_diag_gaussian(out.mu, out.logvar)
        sq, terms = self._base_terms(x, out, kl)
        if self.likelihood == "bernoulli":
            if out.output != "sigmoid":
                raise ValueError("the Bernoulli likelihood needs a decoder with sigmoid output "
                                 "(its logits); use --output sigmoid or the gaussian likelihood")
            nll = bernoulli_nll_from_logits(x, out.logits)
        else:
            nll = gaussian_nll(x, out.x_hat, self.gamma)
        loss = ops.mean(nll + kl * self.beta)
        terms.update(loss=_mean_item(loss), rec=(r := _mean_item(nll)), nll=r, gamma=self.gamma)
        terms["neg_elbo"] = terms["nll"] + terms["kl"]
        return loss, terms


class LearnedGamma(Objective):
    """Dai & Wipf (ICLR 2019): γ learned through one trainable scalar log γ (init 0):

        loss = E_batch[ Σ_d (x_d − x̂_d)²/(2γ) + (D/2) log(2πγ) + β·KL ]      (math.md §2.2)

    The (D/2) log γ term is what stops γ from growing; its optimum for a fixed x̂ is
    γ = per-element MSE. ``gamma_min`` > 0 bounds γ from below (log γ is clamped).
    """

    name = "learned-gamma"

    def __init__(self, beta: float = 1.0, gamma_min: float = 0.0, log_gamma_init: float = 0.0):
        self.beta, self.gamma_min = float(beta), float(gamma_min)
        self.log_gamma = nn.Parameter(backend.xp().asarray([log_gamma_init], dtype=backend.default_dtype()))

    def parameters(self):
        return [self.log_gamma]

    def _log_gamma(self):
        if self.gamma_min > 0:
            return ops.clip(self.log_gamma, math.log(self.gamma_min), None)
        return self.log_gamma

    def loss(self, x, out):
        kl = kl_diag_gaussian(out.mu, out.logvar)
        sq, terms = self._base_terms(x, out, kl)
        nll = gaussian_nll(x, out.x_hat, log_gamma=ops.reshape(self._log_gamma(), ()))
        loss = ops.mean(nll + kl * self.beta)
        terms.update(loss=_mean_item(loss), rec=(r := _mean_item(nll)), nll=r, gamma=self.gamma)
        terms["neg_elbo"] = terms["nll"] + terms["kl"]
        return loss, terms

    @property
    def gamma(self) -> float:
        return max(math.exp(float(backend.to_host(self.log_gamma.data)[0])), self.gamma_min)

    def state_dict(self):
        return {"log_gamma": float(backend.to_host(self.log_gamma.data)[0])}

    def load_state_dict(self, state):
        self.log_gamma.data[...] = state["log_gamma"]


class Balanced(Objective):
    """Balanced reconstruction (Asperti & Trentin 2020), math.md §2.3.

    γ is a running estimate of the per-element MSE, constant in the backward pass:

        loss = E_batch[ Σ_d (x_d − x̂_d)²/(2γ) + kl_weight · KL ]
        after each step:  γ ← min(γ, momentum·γ + (1 − momentum)·mse_batch),  γ₀ = 1

    so γ can only go down. The constant (D/2) log(2πγ) is left out of the gradient but
    reported in ``nll`` so that values are comparable with the other objectives.
    """

    name = "balanced"

    def __init__(self, kl_weight: float = 1.0, gamma_init: float = 1.0, momentum: float = 0.99):
        if not 0 <= momentum < 1:
            raise ValueError(f"balanced momentum must be in [0, 1), got {momentum}")
        self.kl_weight, self.gamma, self.momentum = float(kl_weight), float(gamma_init), float(momentum)
        self._last_mse = None

    def loss(self, x, out):
        kl = kl_diag_gaussian(out.mu, out.logvar)
        sq, terms = self._base_terms(x, out, kl)
        D = int(math.prod(x.shape[1:]))
        rec = sq * (0.5 / self.gamma)
        loss = ops.mean(rec + kl * self.kl_weight)
        self._last_mse = terms["mse"]
        terms.update(loss=_mean_item(loss), rec=(r := _mean_item(rec)),
                     nll=r + 0.5 * D * math.log(2 * math.pi * self.gamma), gamma=self.gamma)
        terms["neg_elbo"] = terms["nll"] + terms["kl"]  # the ELBO under N(x̂, γI), β = 1
        return loss, terms

    def after_step(self, terms):
        mse = terms.get("mse", self._last_mse)
        self.gamma = min(self.gamma, self.momentum * self.gamma + (1 - self.momentum) * mse)

    def state_dict(self):
        return {"gamma": self.gamma}

    def load_state_dict(self, state):
        self.gamma = float(state["gamma"])


OBJECTIVES = {"elbo": ELBO, "learned-gamma": LearnedGamma, "balanced": Balanced}


def build_objective(name: str, **params) -> Objective:
    """An objective by name with its parameters (unknown keys are refused)."""
    if name == "beta-vae":  # alias: β-weighted ELBO
        name = "elbo"
    if name == "bernoulli":
        name, params = "elbo", {**params, "likelihood": "bernoulli"}
    if name == "geco":  # constrained optimisation (Rezende & Viola 2018), its own module
        from .geco import GECO  # noqa: PLC0415
        return GECO.from_params(**params)
    params.pop("dataset", None)  # only GECO uses the training set (CLA labels)
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of: "
                         f"{', '.join(list(OBJECTIVES) + ['beta-vae', 'bernoulli', 'geco'])}")
    cls = OBJECTIVES[name]
    try:
        return cls(**{k: v for k, v in params.items() if v is not None})
    except TypeError as exc:
        raise ValueError(f"objective {name!r}: {exc}") from None
