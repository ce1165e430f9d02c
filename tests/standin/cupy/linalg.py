"""``cupy.linalg`` of the stand-in (the routines CuPy has that minivae uses or may use)."""
import numpy as _np

from . import _core


def _f(name):
    fn = getattr(_np.linalg, name)

    def f(*args, **kwargs):
        return _core.call(fn, args, kwargs)
    f.__name__ = name
    return f


solve, inv, norm, cholesky, eigh, eigvalsh, det, slogdet, qr, svd, lstsq, pinv = (
    _f(n) for n in ("solve", "inv", "norm", "cholesky", "eigh", "eigvalsh", "det", "slogdet", "qr", "svd",
                    "lstsq", "pinv"))
