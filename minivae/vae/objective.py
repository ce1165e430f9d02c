"""The interface every training objective implements, and the registry of objectives.

An objective turns a batch ``x`` and the model's :class:`~minivae.vae.models.VAEOutput`
into a scalar loss Tensor plus a dict of logged terms (per example, batch mean, nats):

* ``loss(x, out, labels=None) -> (Tensor, terms)`` -- never changes the objective's state
  (the test-set evaluation calls it too);
* ``after_step(terms)`` -- non-gradient state updates after the optimiser step
  (the balanced γ rule, GECO's λ update);
* ``needs_labels`` -- whether ``loss`` needs the batch's class labels (GECO's CLA);
* ``decoder_variance()`` -- the γ of the Gaussian decoder N(x̂, γI) the objective
  trains (fixed, learned or balanced), or ``None`` when it has none (GECO, Bernoulli);
* ``state()`` / ``load_state(state)`` -- what a checkpoint keeps (γ, λ, C_ma, ...);
* ``parameters()`` -- trainable scalars the objective owns (learned log γ).

Each objective declares its hyperparameters as a nested dataclass ``Params`` of
:func:`minivae.settings.setting` fields: the run layer builds the command-line flags
and validates config files from it, so adding an objective touches its own file only
(subclasses register themselves under their ``name``).

Terms always logged: ``loss`` (the optimised value), ``kl``, ``nll`` (−log p(x|z)
with its constants, nats), ``neg_elbo`` (nll + KL: the −ELBO at β = 1), ``mse``
(per element); objectives add their state (``gamma``, ``lambda``, ``c_ma``...).
"""
from __future__ import annotations

import dataclasses

from ..autograd import Tensor

REGISTRY: dict = {}          # name -> Objective subclass
ALIASES: dict = {}           # alias -> (name, fixed params), e.g. "bernoulli" -> ("elbo", {"likelihood": ...})


def mean_item(t: Tensor) -> float:
    """The batch mean of a per-example Tensor, as a host float: reduced on the device, so one scalar
    crosses to the host (not the whole per-example vector)."""
    return float(t.data.mean())


class Objective:
    """Base class; see the module docstring for the interface."""

    name = "objective"
    needs_labels = False

    @dataclasses.dataclass
    class Params:
        """No hyperparameters."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            REGISTRY[cls.name] = cls

    @classmethod
    def from_params(cls, params, **context) -> "Objective":
        """Build from a (validated) ``Params`` instance; ``context`` carries what the run
        layer loaded for it (e.g. GECO's classifier)."""
        return cls(**dataclasses.asdict(params))

    @classmethod
    def resolve_params(cls, params):
        """Fill hyperparameters whose default depends on others (GECO's normaliser s)."""
        return params

    def parameters(self) -> list:
        return []

    def loss(self, x: Tensor, out, labels=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, terms: dict) -> None:
        """Update non-gradient state after the optimiser step (default: nothing)."""

    def decoder_variance(self):
        """γ of the Gaussian decoder this objective trains, or None."""
        return None

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    # PyTorch-style names for the same two methods
    def state_dict(self) -> dict:
        return self.state()

    def load_state_dict(self, state: dict) -> None:
        self.load_state(state)


def objective_names() -> list:
    return sorted(REGISTRY) + sorted(ALIASES)


def objective_class(name: str):
    """(class, fixed params) of an objective name or alias; one clear error for an unknown one."""
    if name in ALIASES:
        target, fixed = ALIASES[name]
        return REGISTRY[target], dict(fixed)
    if name not in REGISTRY:
        raise ValueError(f"unknown objective {name!r}; choose one of: {', '.join(objective_names())}")
    return REGISTRY[name], {}


def build_objective(name: str, **params) -> Objective:
    """An objective by name from keyword hyperparameters (validated like config-file values).

    ``classifier=`` passes a classifier *model* to GECO's CLA constraint; loading one from a
    path is the run layer's job (:func:`minivae.run.build_objective`).
    """
    from ..settings import SettingError, coerce_section  # noqa: PLC0415  (no cycle: settings is a leaf)
    cls, fixed = objective_class(name)
    context = {k: params.pop(k) for k in ("classifier",) if k in params and not isinstance(params[k], str)}
    own = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = sorted(k for k, v in params.items() if k not in own and v is not None)
    if unknown:
        raise ValueError(f"objective {name!r} does not use {', '.join('--' + k.replace('_', '-') for k in unknown)} "
                         f"(its hyperparameters: {', '.join(sorted(own)) or 'none'})")
    for key, value in fixed.items():
        if params.get(key) not in (None, value):
            raise ValueError(f"objective {name!r} fixes {key}={value!r}")
    try:
        values = cls.resolve_params(coerce_section(cls.Params, {**{k: v for k, v in params.items()
                                                                     if v is not None}, **fixed}))
    except SettingError as exc:
        raise ValueError(f"objective {name!r}: {exc}") from None
    return cls.from_params(values, **context)


__all__ = ["ALIASES", "Objective", "REGISTRY", "build_objective", "mean_item", "objective_class",
           "objective_names"]
