"""The ELBO objectives with a fixed, learned or balanced decoder variance (math.md §1–2).

The interface they share (``loss``, ``after_step``, ``decoder_variance``, ``state``,
their ``Params``) is :mod:`minivae.vae.objective`. Terms logged besides the common
ones: ``rec`` (the reconstruction term as it enters the loss) and ``gamma``.
"""
from __future__ import annotations

import dataclasses
import math

from .. import backend, nn, ops
from ..settings import between, non_negative, positive, setting
from .distributions import bernoulli_nll_from_logits, gaussian_nll, kl_diag_gaussian, squared_error
from .objective import ALIASES, REGISTRY, Objective, build_objective
from .objective import mean_item as _mean_item

LIKELIHOODS = ("gaussian", "bernoulli")


class _ELBOBase(Objective):
    """Shared helpers of the ELBO family."""

    def _base_terms(self, x, out, kl):
        D = int(math.prod(x.shape[1:]))
        sq = squared_error(x, out.x_hat)
        return sq, {"kl": _mean_item(kl), "mse": _mean_item(sq) / D}


class ELBO(_ELBOBase):
    """−ELBO with a fixed decoder variance γ and KL weight β (β-VAE, Higgins et al. 2017):

        loss = E_batch[ −log p(x|z) + β · KL(q(z|x) || N(0, I)) ]          (math.md §1)

    ``likelihood="gaussian"`` uses N(x; x̂, γI) with its constants; ``"bernoulli"``
    the stable logit form (needs a sigmoid-output decoder, data in [0, 1]).
    """

    name = "elbo"

    @dataclasses.dataclass
    class Params:
        gamma: float = setting(1.0, "fixed decoder variance γ", kind="float", check=positive)
        beta: float = setting(1.0, "KL weight β (β-VAE)", kind="float", check=non_negative)
        likelihood: str = setting("gaussian", "decoder likelihood", kind="str", choices=LIKELIHOODS)

    def __init__(self, gamma: float = 1.0, beta: float = 1.0, likelihood: str = "gaussian"):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of: {', '.join(LIKELIHOODS)}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        if not beta >= 0:
            raise ValueError(f"beta must be non-negative, got {beta}")
        self.gamma, self.beta, self.likelihood = float(gamma), float(beta), likelihood

    def decoder_variance(self):
        return self.gamma if self.likelihood == "gaussian" else None

    def loss(self, x, out, labels=None):
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


class LearnedGamma(_ELBOBase):
    """Dai & Wipf (ICLR 2019): γ learned through one trainable scalar log γ (init 0):

        loss = E_batch[ Σ_d (x_d − x̂_d)²/(2γ) + (D/2) log(2πγ) + β·KL ]      (math.md §2.2)

    The (D/2) log γ term is what stops γ from growing; its optimum for a fixed x̂ is
    γ = per-element MSE. ``gamma_min`` > 0 bounds γ from below (log γ is clamped).
    """

    name = "learned-gamma"

    @dataclasses.dataclass
    class Params:
        beta: float = setting(1.0, "KL weight β (β-VAE)", kind="float", check=non_negative)
        gamma_min: float = setting(0.0, "lower bound on the learned γ (0: off)", kind="float", check=non_negative)
        log_gamma_init: float = setting(0.0, "initial log γ (Dai & Wipf: 0)", kind="float")

    def __init__(self, beta: float = 1.0, gamma_min: float = 0.0, log_gamma_init: float = 0.0):
        if not beta >= 0:
            raise ValueError(f"beta must be non-negative, got {beta}")
        if not gamma_min >= 0:
            raise ValueError(f"gamma_min must be non-negative, got {gamma_min}")
        self.beta, self.gamma_min = float(beta), float(gamma_min)
        self.log_gamma = nn.Parameter(backend.xp().asarray([log_gamma_init], dtype=backend.default_dtype()))

    def parameters(self):
        return [self.log_gamma]

    def _log_gamma(self):
        if self.gamma_min > 0:
            return ops.clip(self.log_gamma, math.log(self.gamma_min), None)
        return self.log_gamma

    def loss(self, x, out, labels=None):
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

    def decoder_variance(self):
        return self.gamma

    def state(self):
        return {"log_gamma": float(backend.to_host(self.log_gamma.data)[0])}

    def load_state(self, state):
        self.log_gamma.data[...] = state["log_gamma"]


class Balanced(_ELBOBase):
    """Balanced reconstruction (Asperti & Trentin 2020), math.md §2.3.

    γ is a running estimate of the per-element MSE, constant in the backward pass:

        loss = E_batch[ Σ_d (x_d − x̂_d)²/(2γ) + kl_weight · KL ]
        after each step:  γ ← min(γ, momentum·γ + (1 − momentum)·mse_batch),  γ₀ = 1

    so γ can only go down. The constant (D/2) log(2πγ) is left out of the gradient but
    reported in ``nll`` so that values are comparable with the other objectives.
    """

    name = "balanced"

    @dataclasses.dataclass
    class Params:
        kl_weight: float = setting(1.0, "KL multiplier k (the authors' code uses (2H/latent)^2)", kind="float",
                                   check=non_negative)
        gamma_init: float = setting(1.0, "initial γ₀ of the running MSE estimate", kind="float", check=positive)
        gamma_momentum: float = setting(0.99, "momentum of γ ← min(γ, m·γ + (1−m)·mse)", kind="float",
                                        check=between(0, 1, open_hi=True))

    @classmethod
    def from_params(cls, params, **context):
        return cls(params.kl_weight, params.gamma_init, params.gamma_momentum)

    def __init__(self, kl_weight: float = 1.0, gamma_init: float = 1.0, momentum: float = 0.99):
        if not kl_weight >= 0:
            raise ValueError(f"balanced kl_weight must be non-negative, got {kl_weight}")
        if not gamma_init > 0:
            raise ValueError(f"balanced gamma_init must be positive, got {gamma_init}")
        if not 0 <= momentum < 1:
            raise ValueError(f"balanced momentum must be in [0, 1), got {momentum}")
        self.kl_weight, self.gamma, self.momentum = float(kl_weight), float(gamma_init), float(momentum)
        self._last_mse = None

    def loss(self, x, out, labels=None):
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

    def decoder_variance(self):
        return self.gamma

    def state(self):
        return {"gamma": self.gamma}

    def load_state(self, state):
        self.gamma = float(state["gamma"])


# β-VAE is the ELBO with its β; "bernoulli" the ELBO with the Bernoulli likelihood
ALIASES["beta-vae"] = ("elbo", {})
ALIASES["bernoulli"] = ("elbo", {"likelihood": "bernoulli"})
OBJECTIVES = REGISTRY  # name -> class (GECO registers itself when minivae.vae.geco is imported)

__all__ = ["Balanced", "ELBO", "LearnedGamma", "OBJECTIVES", "Objective", "build_objective"]
