"""``cupy.ElementwiseKernel`` of the stand-in: a NumPy reference per known kernel.

The stand-in cannot compile CUDA C. For each kernel minivae defines it holds the
exact source (parameters and body, whitespace-normalised) and a NumPy
reference of the same arithmetic in the same precision. A kernel whose source
no longer matches is refused, so the reference cannot drift from the kernel
silently: edit both together.

What only a GPU can check (tests/test_cupy_parity.py runs it there): that the
CUDA C compiles, that ``T`` binds to the parameter dtype, and the rounding of
the compiled code (nvcc may contract ``a*b + c`` into one FMA; ``sqrt`` is
IEEE-rounded on both).
"""
import numpy as _np

from . import _core


def _normalise(text):
    return " ".join(text.split())


def _adam_step(grad, b1, b2, wd, step_size, bc2_sqrt, eps, param, m, v):
    """minivae.optim.adam's kernel, line by line, with every constant cast to T."""
    t = param.dtype.type
    g = grad + t(wd) * param                                    # T g = grad + (T)wd * param;
    m[...] = t(b1) * m + t(1.0 - b1) * g                        # m = (T)b1 * m + (T)(1.0 - b1) * g;
    v[...] = t(b2) * v + t(1.0 - b2) * g * g                    # v = (T)b2 * v + (T)(1.0 - b2) * g * g;
    param -= t(step_size) * m / (_np.sqrt(v) / t(bc2_sqrt) + t(eps))   # param -= ...;


REFERENCES = {
    "minivae_adam_step": (
        "T grad, float64 b1, float64 b2, float64 wd, float64 step_size, float64 bc2_sqrt, float64 eps",
        "T param, T m, T v",
        """
        T g = grad + (T)wd * param;
        m = (T)b1 * m + (T)(1.0 - b1) * g;
        v = (T)b2 * v + (T)(1.0 - b2) * g * g;
        param -= (T)step_size * m / (sqrt(v) / (T)bc2_sqrt + (T)eps);
        """,
        _adam_step),
}


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", **options):
        known = REFERENCES.get(name)
        if known is None or [_normalise(s) for s in known[:3]] != [_normalise(s) for s in
                                                                   (in_params, out_params, operation)]:
            raise NotImplementedError(
                f"the CuPy stand-in has no reference for ElementwiseKernel {name!r} as written; "
                "add or update it in tests/standin/cupy/_kernels.py together with the kernel")
        self.name, self._n_in, self._n_out = name, len(in_params.split(",")), len(out_params.split(","))
        self._reference = known[3]

    def __call__(self, *args):
        if len(args) != self._n_in + self._n_out:
            raise TypeError(f"{self.name}: the stand-in needs every output passed explicitly "
                            f"({self._n_in} inputs + {self._n_out} outputs, got {len(args)})")
        arrays = [a for a in args if type(a) is _core.ndarray]
        if len({a.dtype for a in arrays}) > 1:
            raise TypeError(f"{self.name}: arrays of mixed dtypes {sorted({str(a.dtype) for a in arrays})}")
        self._reference(*[_core.unwrap(a) for a in args])
        return args[self._n_in:] if self._n_out > 1 else args[-1]
