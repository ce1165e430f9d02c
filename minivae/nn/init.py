"""Weight initialisation from the backend's seeded generator.

* He/Kaiming (He et al. 2015, eq. 10): Var W = 2 / fan_in, for ReLU networks.
* Glorot/Xavier (Glorot & Bengio 2010, eq. 16): U(−a, a), a = sqrt(6 / (fan_in + fan_out)).
* ``pytorch_default``: U(−1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases --
  what ``torch.nn.Linear``/``Conv2d`` do (kaiming_uniform with a = sqrt(5)), so a
  model initialised here matches the PyTorch model's statistics.
"""
from __future__ import annotations

import math

from .. import backend


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, kh, kw) weight."""
    receptive = 1
    for n in shape[2:]:
        receptive *= n
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, bound: float):
    return backend.rng().uniform(-bound, bound, size=shape).astype(backend.default_dtype())


def normal(shape, std: float):
    return (backend.rng().standard_normal(size=shape) * std).astype(backend.default_dtype())


def he_normal(shape, fan_in: int | None = None):
    return normal(shape, math.sqrt(2.0 / (fan_in or fans(shape)[0])))


def glorot_uniform(shape):
    fan_in, fan_out = fans(shape)
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)))


def pytorch_default(shape, fan_in: int | None = None):
    return uniform(shape, 1.0 / math.sqrt(fan_in or fans(shape)[0]))


INITIALISERS = {"he": he_normal, "glorot": glorot_uniform, "pytorch": pytorch_default}


def initialise(shape, scheme: str):
    if scheme not in INITIALISERS:
        raise ValueError(f"unknown initialisation {scheme!r}; choose one of: {', '.join(INITIALISERS)}")
    return INITIALISERS[scheme](shape)
