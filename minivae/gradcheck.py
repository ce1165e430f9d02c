"""Finite-difference gradient checks (public: run them on your own modules).

The contract follows Chainer's ``check_backward``: float64 central differences,

    ∂f/∂x_i ≈ (f(x + ε e_i) − f(x − ε e_i)) / 2ε          (error O(ε²)),

either for every input element (the full Jacobian, for tiny inputs) or along one
random direction d (the directional derivative ⟨∇f, d⟩, for larger inputs).
Non-scalar outputs are reduced with fixed random weights w, so the check is of
the vector-Jacobian product wᵀJ that backward computes; ``mode="full"`` also
compares every row of J.

Example::

    from minivae import gradcheck, nn, backend
    backend.use("numpy", dtype="float64")
    layer = nn.Linear(3, 2)
    x = gradcheck.random_input((4, 3), requires_grad=True)
    gradcheck.check(lambda x: layer(x), [x, *layer.parameters()])
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Analytic and numerical derivatives disagree."""


@dataclass
class GradcheckResult:
    ok: bool
    max_abs_error: float
    max_rel_error: float
    mode: str
    details: list = field(default_factory=list)


def random_input(shape, requires_grad=True, low=-1.0, high=1.0, kinks=(), margin=1e-2, seed=None):
    """A float64 tensor of uniform values, moved away from ``kinks`` (e.g. ``(0.0,)`` for ReLU)."""
    gen = numpy.random.default_rng(seed) if seed is not None else backend.rng()
    x = backend.to_host(gen.uniform(low, high, size=shape))
    x = avoid_kinks(x, kinks, margin)
    return Tensor(backend.to_device(x, numpy.float64), requires_grad=requires_grad)


def avoid_kinks(x, kinks=(0.0,), margin=1e-2):
    """Push values within ``margin`` of a kink to ``kink ± margin``, so that a
    finite difference of step ε < margin never straddles a non-differentiable point."""
    x = numpy.array(backend.to_host(x), dtype=numpy.float64)
    for k in kinks:
        near = numpy.abs(x - k) < margin
        x[near] = k + numpy.where(x[near] >= k, margin, -margin)
    return x


def _scalarise(out: Tensor, weights):
    return (out * Tensor(weights)).sum() if out.data.size > 1 or out.ndim else out.sum()


def check(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, mode="auto", seed=0, n_directions=2,
          raise_on_failure=True) -> GradcheckResult:
    """Compare backward() of ``f(*args)`` with central differences.

    ``f`` takes the tensors of ``args`` in order and returns a Tensor; ``inputs`` is
    the list of tensors to differentiate with respect to -- usually ``args`` plus
    any parameters ``f`` closes over. Each tensor must be float64; each one with
    ``requires_grad`` is checked. The tensors passed to ``f`` are the first
    ``f.__code__.co_argcount`` of ``inputs`` (or all of them, for a lambda taking
    ``*args``).

    ``mode``: ``"full"`` perturbs every element (tiny inputs), ``"directional"``
    perturbs along ``n_directions`` random directions; ``"auto"`` picks full when
    the inputs hold at most 64 elements in all.
    """
    inputs = list(inputs)
    for t in inputs:
        if not isinstance(t, Tensor) or t.dtype != numpy.float64:
            raise TypeError("gradcheck needs float64 Tensors (finite differences in float32 are "
                            "too coarse); run backend.use(dtype='float64') before building the model")
    n_args = _arg_count(f, len(inputs))
    call = lambda: f(*inputs[:n_args])  # noqa: E731
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    total = sum(t.size for t in checked)
    if mode == "auto":
        mode = "full" if total <= 64 else "directional"
    gen = numpy.random.default_rng(seed)

    out = call()
    weights = backend.to_device(gen.standard_normal(out.shape), numpy.float64)
    for t in checked:
        t.grad = None
    _scalarise(out, weights).backward()
    analytic = [backend.to_host(t.grad) if t.grad is not None else numpy.zeros(t.shape) for t in checked]

    def value():
        with no_grad():
            return float(backend.to_host(_scalarise(call(), weights).data))

    details, worst_abs, worst_rel, ok = [], 0.0, 0.0, True
    if mode == "full":
        for ti, t in enumerate(checked):
            numeric = numpy.empty(t.size)
            for i in range(t.size):
                plus, minus = _perturbed(t, i, eps, value)
                numeric[i] = (plus - minus) / (2 * eps)
            err = numpy.abs(numeric - analytic[ti].reshape(-1))
            tol = atol + rtol * numpy.abs(numeric)
            bad = numpy.flatnonzero(err > tol)
            worst_abs = max(worst_abs, float(err.max(initial=0)))
            worst_rel = max(worst_rel, float((err / (numpy.abs(numeric) + 1e-12)).max(initial=0)))
            if bad.size:
                ok = False
                i = int(bad[0])
                details.append(f"input {ti} (shape {t.shape}) element {numpy.unravel_index(i, t.shape)}: "
                               f"analytic {analytic[ti].reshape(-1)[i]:.8g}, numeric {numeric[i]:.8g}")
        if ok:
            _check_full_jacobian_rows(call, out, checked, gen, atol, rtol, details)
            ok = not details
    elif mode == "directional":
        for _ in range(n_directions):
            directions = [gen.standard_normal(t.shape) for t in checked]
            originals = [t.data.copy() for t in checked]
            for t, d in zip(checked, directions):
                t.data[...] = t.data + eps * backend.to_device(d, numpy.float64)
            plus = value()
            for t, o, d in zip(checked, originals, directions):
                t.data[...] = o - eps * backend.to_device(d, numpy.float64)
            minus = value()
            for t, o in zip(checked, originals):
                t.data[...] = o
            numeric = (plus - minus) / (2 * eps)
            exact = float(sum((a * d).sum() for a, d in zip(analytic, directions)))
            err = abs(numeric - exact)
            worst_abs = max(worst_abs, err)
            worst_rel = max(worst_rel, err / (abs(numeric) + 1e-12))
            if err > atol + rtol * abs(numeric):
                ok = False
                details.append(f"directional derivative: analytic {exact:.10g}, numeric {numeric:.10g}")
    else:
        raise ValueError(f"gradcheck mode must be 'auto', 'full' or 'directional', not {mode!r}")

    result = GradcheckResult(ok, worst_abs, worst_rel, mode, details)
    if not ok and raise_on_failure:
        raise GradcheckError("gradient check failed (" + mode + "): " + "; ".join(details))
    return result


def _check_full_jacobian_rows(call, out, checked, gen, atol, rtol, details, max_rows=8):
    """Backward with one-hot output gradients reproduces single rows of J.

    The weighted check above validates wᵀJ; this one catches a vjp that is only right
    in aggregate (e.g. rows swapped), on a few rows chosen at random."""
    if out.data.size <= 1:
        return
    rows = gen.choice(out.data.size, size=min(max_rows, out.data.size), replace=False)
    for r in rows:
        onehot = numpy.zeros(out.data.size)
        onehot[r] = 1.0
        onehot = backend.to_device(onehot.reshape(out.shape), numpy.float64)
        for t in checked:
            t.grad = None
        call().backward(onehot)
        eps = 1e-6

        def row_value():
            with no_grad():
                return float(backend.to_host(call().data).reshape(-1)[r])

        for ti, t in enumerate(checked):
            grad = backend.to_host(t.grad).reshape(-1) if t.grad is not None else numpy.zeros(t.size)
            for i in range(t.size):
                plus, minus = _perturbed(t, i, eps, row_value)
                numeric = (plus - minus) / (2 * eps)
                if abs(numeric - grad[i]) > atol + rtol * abs(numeric):
                    details.append(f"Jacobian row {int(r)}, input {ti} element {i}: "
                                   f"analytic {grad[i]:.8g}, numeric {numeric:.8g}")
                    return


def _perturbed(t, i, eps, value):
    """f at x ± ε e_i, perturbing element ``i`` of ``t`` in place (also for
    non-contiguous views, where ``reshape(-1)`` would silently copy)."""
    idx = numpy.unravel_index(i, t.shape)
    orig = float(t.data[idx])
    t.data[idx] = orig + eps
    plus = value()
    t.data[idx] = orig - eps
    minus = value()
    t.data[idx] = orig
    return plus, minus


def _arg_count(f, n_inputs):
    code = getattr(f, "__code__", None)
    if code is None or code.co_flags & 0x04:  # not a plain function, or takes *args
        return n_inputs
    count = code.co_argcount - (1 if hasattr(f, "__self__") else 0)
    return min(count, n_inputs)


def check_module(module, *example_inputs, **kwargs) -> GradcheckResult:
    """Gradient check of ``module(*example_inputs)`` w.r.t. its inputs and parameters."""
    n = len(example_inputs)
    params = module.parameters()
    return check(lambda *args: module(*args[:n]), list(example_inputs) + params, **kwargs)
