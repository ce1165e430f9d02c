"""Generation through one or two stages (math.md §4).

* stage 1:  z ~ N(0, I)                         → x = decoder₁(z)
* stage 2:  u ~ N(0, I) → ẑ = decoder₂(u) [+ √γ_z ε, Dai & Wipf's noise, optional]
            → renormalise(ẑ) (Asperti; ``scalar`` | ``per-dim`` | ``off``) → x = decoder₁(ẑ)

All random draws come from ``numpy.random.default_rng(seed)`` on the host, in a
fixed order (per batch: u, then the γ_z noise), so a seed gives the same samples
on any backend up to floating-point rounding. Renormalisation statistics are
those of each generation batch (``batch_size``, default 1000).
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..nn.evaluation import batched_map, evaluating
from .renormalise import renormalise


def generate(stage1_model, n: int, *, stage2=None, renorm: str = "off", gamma_noise: bool = False,
             seed: int = 0, batch_size: int = 1000, return_codes: bool = False):
    """``n`` images (host float32, (n, C, H, W), the decoder mean) from the prior of stage 1, or
    through ``stage2`` (a :class:`~minivae.run.Stage2`) when given.

    With ``return_codes`` also returns the codes fed to decoder₁ (host float64, (n, k)).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
    n = int(n)
    if stage2 is None and (renorm != "off" or gamma_noise):
        raise ValueError("renormalisation and γ_z noise apply to second-stage samples; "
                         "sample through stage 2 or leave them off")
    if stage2 is not None and renorm != "off" and min(n, batch_size) < 2:
        raise ValueError("renormalisation estimates the spread of each batch: ask for at least 2 samples")
    gen = numpy.random.default_rng(seed)
    k = stage1_model.latent_dim
    images, codes = [], []
    models = [stage1_model] + ([stage2.model] if stage2 is not None else [])
    with evaluating(*models):
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            u = gen.standard_normal((b, k))
            z = Tensor(backend.to_device(u))
            if stage2 is not None:
                z = stage2.model.decode(z).data
                if gamma_noise:
                    z = z + math.sqrt(stage2.gamma_z) * backend.to_device(gen.standard_normal((b, k)))
                z = Tensor(renormalise(z, renorm, stage2.moments))
            x = stage1_model.decode(z)
            images.append(backend.to_host(x.data).astype(numpy.float32))
            if return_codes:
                codes.append(backend.to_host(z.data).astype(numpy.float64))
    images = numpy.concatenate(images)
    return (images, numpy.concatenate(codes)) if return_codes else images


def stage2_reconstruction(stage2_model, codes, *, seed: int = 0, batch_size: int = 1000):
    """ẑ = decoder₂(u), u ~ q(u|z) for each code z (host float64) -- the authors' ``reconstruct2``."""
    eps = numpy.random.default_rng(seed).standard_normal(codes.shape)
    with evaluating(stage2_model):
        out = batched_map(lambda z, e: stage2_model(z, eps=e.data).x_hat, codes, eps, batch_size=batch_size)
    return out.astype(numpy.float64)
