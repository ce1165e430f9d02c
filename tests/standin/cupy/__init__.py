"""A strict CPU stand-in for CuPy, for minivae's tests only (never imported by minivae/).

``tests/conftest.py`` puts this package in ``sys.modules['cupy']`` when no real
CuPy + CUDA GPU is usable, and command-line runs get it with
``PYTHONPATH=tests/standin``. It is found as ``cupy`` so that
``backend.use('cupy')`` runs the very code path a GPU run runs.

What it proves: no implicit host/device crossing (see :mod:`cupy._core`), the
same code path as on CuPy, the same numbers as NumPy, and how many transfers a
step makes (:data:`LOG`). What it cannot prove: that CUDA kernels compile and
compute what their reference here computes (see :mod:`cupy._kernels`), speed,
memory use, asynchrony (every call here is synchronous).

Only names real CuPy has are exposed; anything else is an ``AttributeError``.
"""
import os as _os
import sys as _sys

import numpy as _np

from . import _core, _kernels, cuda, lib, linalg, random  # noqa: F401
from ._core import LOG, ndarray  # noqa: F401
from ._kernels import ElementwiseKernel  # noqa: F401

__version__ = "0.0.0+minivae.standin"
__standin__ = True    # how a test, or a person, tells this from real CuPy

if _os.environ.get("MINIVAE_STANDIN_QUIET") != "1":   # a command run on it says so, once
    print("note: 'cupy' is minivae's CPU stand-in (tests/standin): no GPU is used, timings are not GPU "
          "timings", file=_sys.stderr)

# ufuncs and functions real CuPy provides under the same name (the subset minivae
# could plausibly use); anything not listed is refused, so code cannot come to
# depend on a NumPy name CuPy lacks.
_UFUNCS = set("""
add subtract multiply divide true_divide floor_divide power float_power negative positive absolute abs fabs
sign sqrt cbrt square reciprocal exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2 sin cos tan arcsin
arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh hypot deg2rad rad2deg degrees radians mod
remainder fmod divmod greater greater_equal less less_equal equal not_equal logical_and logical_or
logical_xor logical_not bitwise_and bitwise_or bitwise_xor invert left_shift right_shift signbit copysign
nextafter ldexp frexp modf floor ceil trunc rint isfinite isinf isnan maximum minimum fmax fmin heaviside
conj conjugate
""".split())

_FUNCTIONS = set("""
empty empty_like zeros zeros_like ones ones_like full full_like eye identity arange linspace logspace
meshgrid diag diagflat tri tril triu copy reshape ravel transpose swapaxes moveaxis rollaxis expand_dims
squeeze broadcast_to broadcast_arrays atleast_1d atleast_2d atleast_3d concatenate stack vstack hstack
dstack column_stack split array_split tile repeat flip fliplr flipud roll rot90 pad ascontiguousarray
asfortranarray take take_along_axis put where nonzero argwhere flatnonzero compress choose select
searchsorted sort argsort lexsort partition argpartition unique count_nonzero diff cumsum cumprod einsum
dot vdot inner outer matmul tensordot kron trace diagonal clip around round sum prod mean var std max
min amax amin nanmax nanmin nansum nanmean argmax argmin all any allclose isclose array_equal median
percentile quantile average histogram bincount cov corrcoef cross result_type can_cast ndim isscalar
real imag angle sinc nan_to_num interp convolve
""".split())


class _Ufunc:
    """A CuPy-style ufunc over the stand-in's arrays (call, reduce, accumulate, at, outer)."""

    def __init__(self, uf):
        self._uf, self.__name__ = uf, uf.__name__
        self.nin, self.nout = uf.nin, uf.nout

    def __call__(self, *args, **kwargs):
        return _core.call(self._uf, args, kwargs)

    def reduce(self, *args, **kwargs):
        return _core.call(self._uf.reduce, args, kwargs)

    def accumulate(self, *args, **kwargs):
        return _core.call(self._uf.accumulate, args, kwargs)

    def outer(self, *args, **kwargs):
        return _core.call(self._uf.outer, args, kwargs)

    def at(self, a, indices, b=None):
        if type(a) is not ndarray:
            raise TypeError(f"{self.__name__}.at needs a device array, got {type(a)}")
        args = (_core.unwrap(a), _core._index(indices)) + (() if b is None else (_core.unwrap(b),))
        self._uf.at(*args)


def _function(fn):
    def f(*args, **kwargs):
        return _core.call(fn, args, kwargs)
    f.__name__ = fn.__name__
    return f


def __getattr__(name):
    if name in _UFUNCS:
        value = _Ufunc(getattr(_np, name)) if isinstance(getattr(_np, name), _np.ufunc) else \
            _function(getattr(_np, name))
    elif name in _FUNCTIONS:
        value = _function(getattr(_np, name))
    elif hasattr(_np, name) and (not callable(getattr(_np, name)) or name in ("dtype", "finfo", "iinfo")
                                 or (isinstance(getattr(_np, name), type)
                                     and issubclass(getattr(_np, name), _np.generic))):
        value = getattr(_np, name)            # dtypes, constants: CuPy re-exports NumPy's
    else:
        raise AttributeError(f"module 'cupy' (minivae's CPU stand-in) has no attribute {name!r}; "
                             "add it to tests/standin/cupy only if real CuPy has it")
    globals()[name] = value
    return value


# -- the crossings
def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host data → device (logged); a device array stays (cast if ``dtype`` differs)."""
    if type(a) is ndarray:
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    if _contains_device(a):                  # e.g. a list of device arrays: stacked on the device
        return _core._new(_np.array(_core.unwrap(a), dtype=dtype, order=order or "K"))
    host = _np.array(a, dtype=dtype, order=order or "K", copy=True)  # the device never aliases the host
    LOG.record("h2d", host.nbytes)
    return _core._new(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    out = asarray(obj, dtype=dtype, order=order)
    if copy and out is obj:
        out = out.copy()
    return out if ndmin <= out.ndim else out.reshape((1,) * (ndmin - out.ndim) + out.shape)


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Device → host (logged); host input is returned as NumPy does."""
    if type(a) is ndarray:
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    import sys  # noqa: PLC0415
    return sys.modules[__name__] if any(type(a) is ndarray for a in args) else _np


def is_available():
    return True


def _contains_device(obj):
    if type(obj) is ndarray:
        return True
    return isinstance(obj, (list, tuple)) and any(_contains_device(o) for o in obj)


def shares_memory(a, b, max_work=None):
    """Python bool, as CuPy returns (no device array, no transfer)."""
    return bool(_np.shares_memory(_core.unwrap(a), _core.unwrap(b)))


def may_share_memory(a, b, max_work=None):
    return bool(_np.may_share_memory(_core.unwrap(a), _core.unwrap(b)))
