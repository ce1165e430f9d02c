"""The stand-in's device array: NumPy storage behind CuPy's walls, with a transfer log.

A :class:`ndarray` keeps its values in a private NumPy array that no NumPy code can
reach implicitly. Like ``cupy.ndarray`` it refuses ``numpy.asarray(a)`` /
``__array__`` (CuPy's own message), refuses NumPy arrays mixed into its operators
and into ``cupy.*`` functions (``TypeError: Unsupported type``), and returns 0-d
device arrays (not NumPy scalars) from reductions and scalar indexing.

Stricter than CuPy on purpose: NumPy ufuncs and NumPy functions applied to a
device array raise ``TypeError`` (CuPy would dispatch them to itself through
NEP 13/18). minivae's rule is ``xp`` functions, so a ``numpy.*`` call on device
data is a bug here even where CuPy would have forgiven it.

Every host↔device crossing CuPy allows is recorded in :data:`LOG` with its
direction, size and the first caller outside the stand-in: ``asarray`` of host
data, ``.set``, indices/values given as host lists (host→device); ``.get``,
``asnumpy``, ``.item``, ``.tolist``, ``float()``/``int()``/``bool()``,
``repr``/``format`` (device→host).
"""
from __future__ import annotations

import os
import sys

import numpy

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))   # the repository: paths in the log


class TransferLog:
    """Host↔device crossings, in order: ``(direction, nbytes, 'file:line')``."""

    def __init__(self, depth=1):
        self.events = []
        self.depth = depth      # caller frames kept in 'where' (raise it to trace a crossing)

    def record(self, direction, nbytes):
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(_HERE):
            frame = frame.f_back
        where = []
        while frame is not None and len(where) < self.depth:
            where.append(f"{os.path.relpath(frame.f_code.co_filename, _ROOT)}:{frame.f_lineno}")
            frame = frame.f_back
        self.events.append((direction, int(nbytes), " < ".join(where) or "?"))

    def clear(self):
        self.events.clear()

    def count(self, direction=None):
        return sum(1 for d, _, _ in self.events if direction in (None, d))


LOG = TransferLog()

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")


def _refuse_host(x):
    raise TypeError(f"Unsupported type {type(x)} (CuPy stand-in: a NumPy array on the device "
                    "side; move it with cupy.asarray / backend.to_device first)")


def unwrap(x):
    """Device arrays → their storage; NumPy arrays refused; containers walked."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, numpy.ndarray):
        _refuse_host(x)
    if isinstance(x, (list, tuple)) and x and any(isinstance(i, (ndarray, numpy.ndarray, list, tuple)) for i in x):
        return type(x)(unwrap(i) for i in x)
    return x


def wrap(r, outs=None):
    """NumPy results → device arrays (NumPy scalars become 0-d arrays, as on CuPy)."""
    if isinstance(r, numpy.ndarray):
        if outs:
            for o in outs:
                if o._a is r:
                    return o
        return _new(r)
    if isinstance(r, numpy.generic):
        return _new(numpy.asarray(r))
    if isinstance(r, (tuple, list)):
        return type(r)(wrap(i, outs) for i in r)
    return r


def _new(a):
    obj = object.__new__(ndarray)
    obj._a = a
    return obj


def call(fn, args, kwargs):
    """Run NumPy's ``fn`` on unwrapped arguments and wrap the result (``out=`` kept)."""
    for name in ("where", "initial"):
        if name in kwargs:
            raise TypeError(f"{getattr(fn, '__name__', fn)}() got an unexpected keyword argument {name!r} "
                            "(CuPy's reductions and ufuncs take no where=/initial=)")
    outs = None
    if "out" in kwargs and kwargs["out"] is not None:
        out = kwargs["out"]
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if type(o) is ndarray]
    args = [unwrap(a) for a in args]
    kwargs = {k: unwrap(v) for k, v in kwargs.items()}
    return wrap(fn(*args, **kwargs), outs)


def _index(key):
    """An index: device arrays unwrapped, host arrays refused, host lists counted."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if type(key) is ndarray:
        return key._a
    if isinstance(key, numpy.ndarray):
        _refuse_host(key)
    if isinstance(key, list):
        LOG.record("h2d", numpy.asarray(key).nbytes)
    return key


def _binary(op, reflected=False):
    def method(self, other):
        if isinstance(other, numpy.ndarray):
            _refuse_host(other)
        if not (type(other) is ndarray or isinstance(other, (int, float, complex, bool, numpy.generic))):
            return NotImplemented
        o = other._a if type(other) is ndarray else other
        return wrap(op(o, self._a) if reflected else op(self._a, o))
    return method


def _inplace(op):
    def method(self, other):
        if isinstance(other, numpy.ndarray):
            _refuse_host(other)
        op(self._a, other._a if type(other) is ndarray else other)
        return self
    return method


def _d2h(name):
    def method(self, *args):
        LOG.record("d2h", self._a.nbytes)
        return getattr(self._a, name)(*args)
    return method


def _method(name):
    def method(self, *args, **kwargs):
        return call(getattr(self._a, name), args, kwargs)
    method.__name__ = name
    return method


class ndarray:
    """A device array of the stand-in (see the module docstring)."""

    __slots__ = ("_a",)
    __array_ufunc__ = None          # NumPy ufuncs and NumPy binary operators defer / refuse
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    # -- refusals (the point of the stand-in)
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} applied to a device array (CuPy stand-in refuses "
                        f"what real CuPy would dispatch: use xp.{func.__name__} or backend.to_host)")

    # -- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _new(self._a.T))
    base = property(lambda self: None if self._a.base is None else _new(self._a.base))
    real = property(lambda self: _new(self._a.real))
    imag = property(lambda self: _new(self._a.imag))

    @property
    def device(self):
        from .cuda import Device  # noqa: PLC0415
        return Device(0)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (wrap(row) for row in self._a)

    # -- the only crossings, each logged
    def get(self, stream=None, order="C", out=None):
        LOG.record("d2h", self._a.nbytes)
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if type(arr) is ndarray:
            raise TypeError("ndarray.set takes a NumPy array")
        LOG.record("h2d", numpy.asarray(arr).nbytes)
        self._a[...] = arr

    item = _d2h("item")
    tolist = _d2h("tolist")
    __float__ = _d2h("__float__")
    __int__ = _d2h("__int__")
    __complex__ = _d2h("__complex__")
    __bool__ = _d2h("__bool__")

    def __index__(self):
        raise TypeError("a device array cannot be used as a Python index (CuPy stand-in refuses it); "
                        "use int(a), which copies it to the host")
    __format__ = _d2h("__format__")

    def __repr__(self):
        LOG.record("d2h", self._a.nbytes)
        return repr(self._a)

    def __str__(self):
        LOG.record("d2h", self._a.nbytes)
        return str(self._a)

    def __copy__(self):
        return _new(self._a.copy())

    def __deepcopy__(self, memo):
        return _new(self._a.copy())

    def __reduce__(self):
        LOG.record("d2h", self._a.nbytes)   # pickling copies through the host, as on CuPy
        return (_from_pickle, (self._a.copy(),))

    # -- indexing
    def __getitem__(self, key):
        return wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, numpy.ndarray):
            _refuse_host(value)
        if isinstance(value, list):
            LOG.record("h2d", numpy.asarray(value).nbytes)
        self._a[_index(key)] = value._a if type(value) is ndarray else value

    def fill(self, value):
        self._a.fill(value._a if type(value) is ndarray else value)

    # -- operators
    __add__, __radd__, __iadd__ = _binary(numpy.add), _binary(numpy.add, True), _inplace(numpy.ndarray.__iadd__)
    __sub__, __rsub__, __isub__ = (_binary(numpy.subtract), _binary(numpy.subtract, True),
                                   _inplace(numpy.ndarray.__isub__))
    __mul__, __rmul__, __imul__ = (_binary(numpy.multiply), _binary(numpy.multiply, True),
                                   _inplace(numpy.ndarray.__imul__))
    __truediv__, __rtruediv__, __itruediv__ = (_binary(numpy.true_divide), _binary(numpy.true_divide, True),
                                               _inplace(numpy.ndarray.__itruediv__))
    __floordiv__, __rfloordiv__ = _binary(numpy.floor_divide), _binary(numpy.floor_divide, True)
    __mod__, __rmod__ = _binary(numpy.remainder), _binary(numpy.remainder, True)
    __pow__, __rpow__, __ipow__ = _binary(numpy.power), _binary(numpy.power, True), _inplace(numpy.ndarray.__ipow__)
    __matmul__, __rmatmul__ = _binary(numpy.matmul), _binary(numpy.matmul, True)
    __and__, __or__, __xor__ = _binary(numpy.bitwise_and), _binary(numpy.bitwise_or), _binary(numpy.bitwise_xor)
    __rand__, __ror__ = _binary(numpy.bitwise_and, True), _binary(numpy.bitwise_or, True)
    __iand__, __ior__ = _inplace(numpy.ndarray.__iand__), _inplace(numpy.ndarray.__ior__)
    __lt__, __le__, __gt__, __ge__ = (_binary(numpy.less), _binary(numpy.less_equal),
                                      _binary(numpy.greater), _binary(numpy.greater_equal))
    __eq__, __ne__ = _binary(numpy.equal), _binary(numpy.not_equal)

    def __neg__(self):
        return _new(-self._a)

    def __pos__(self):
        return _new(+self._a)

    def __abs__(self):
        return _new(abs(self._a))

    def __invert__(self):
        return _new(~self._a)


def _from_pickle(a):
    return _new(a)


for _name in ("astype", "copy", "reshape", "ravel", "flatten", "transpose", "swapaxes", "squeeze", "view",
              "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "prod", "cumsum", "all", "any",
              "dot", "clip", "take", "repeat", "conj", "nonzero", "sort", "argsort", "round", "trace",
              "diagonal", "cumprod", "ptp", "compress", "choose", "partition", "argpartition", "put"):
    setattr(ndarray, _name, _method(_name))
