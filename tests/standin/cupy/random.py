"""``cupy.random`` of the stand-in: ``default_rng`` and a ``Generator`` with CuPy's methods.

The stream is deliberately *not* NumPy's for the same seed (real CuPy's XORWOW
differs too), so a test that silently relies on equal draws across backends
fails here as it would on a GPU. Only methods ``cupy.random.Generator`` has are
exposed, with CuPy's ``dtype=`` arguments.
"""
import numpy as _np

from . import _core

_OFFSET = 0x5EED_C0DE   # mixed into the seed: a different stream from numpy.random


class Generator:
    def __init__(self, seed=None):
        self._g = _np.random.default_rng(None if seed is None else [int(seed), _OFFSET])

    def random(self, size=None, dtype=_np.float64, out=None):
        return self._out(self._g.random(size, dtype=dtype), out)

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        return self._out(self._g.standard_normal(size, dtype=dtype), out)

    def standard_exponential(self, size=None, dtype=_np.float64, method="inv", out=None):
        return self._out(self._g.standard_exponential(size, dtype=dtype), out)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=_np.float64):
        low, high = _core.unwrap(low), _core.unwrap(high)
        return _core.wrap(self._g.uniform(low, high, size).astype(dtype, copy=False))

    def integers(self, low, high=None, size=None, dtype=_np.int64, endpoint=False):
        return _core.wrap(self._g.integers(low, high, size, dtype=dtype, endpoint=endpoint))

    @staticmethod
    def _out(values, out):
        values = _np.asarray(values)
        if out is None:
            return _core._new(values)
        out._a[...] = values
        return out


def default_rng(seed=None):
    return Generator(seed)
