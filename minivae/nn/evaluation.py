"""Running a trained module over data: :func:`evaluating` and :func:`batched_map`.

Every "encode the test set", "decode these codes", "classify these images" loop in
minivae is these two: the module in eval mode (BatchNorm uses its running
statistics) with no graph, restored to its previous mode even when the loop fails,
and host arrays in, host arrays out, one device batch at a time.
"""
from __future__ import annotations

import contextlib

import numpy

from .. import backend
from ..autograd import Tensor, no_grad


@contextlib.contextmanager
def evaluating(*modules):
    """``with evaluating(model):`` -- eval mode and no graph inside; each module's previous
    mode is restored on exit (``finally``)."""
    modules = [m for m in modules if hasattr(m, "eval") and hasattr(m, "train")]  # plain callables: no mode
    previous = [getattr(m, "training", False) for m in modules]
    for m in modules:
        m.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in zip(modules, previous):
            m.train(mode)


def batched_map(fn, *arrays, batch_size: int = 500):
    """``fn`` over aligned host arrays in batches: each batch goes to the device as a
    Tensor, ``fn`` returns a Tensor/array or a tuple of them, and the results come back
    concatenated on the host (a tuple when ``fn`` returns one)."""
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"batched_map: arrays of different lengths {[len(a) for a in arrays]}")
    parts, single = [], False
    for start in range(0, n, batch_size):
        batch = [Tensor(backend.to_device(a[start:start + batch_size])) for a in arrays]
        out = fn(*batch)
        if not isinstance(out, tuple):
            out, single = (out,), True
        parts.append([backend.to_host(o.data if isinstance(o, Tensor) else o) for o in out])
    if not parts:
        raise ValueError("batched_map: no data")
    result = tuple(numpy.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
    return result[0] if single else result


__all__ = ["batched_map", "evaluating"]
