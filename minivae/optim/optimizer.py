"""The optimiser base class: every parameter lives in ONE contiguous flat buffer.

At construction the parameters are copied into a single 1-D array and each
``p.data`` is rebound to a reshaped *view* of it; likewise every ``p.grad`` is a
view of one flat gradient buffer, so the autograd's in-place ``grad += g``
(:func:`minivae.autograd._accumulate_leaf`) lands directly in it. A step is then
a handful of in-place array operations over the flat buffers (NumPy: on
cache-sized blocks; CuPy: one fused kernel) instead of a Python loop over
tensors -- the design card's "keep every parameter in one contiguous buffer"
(design.md, "Performance targets").

Rules (documented choices):

* **One dtype, one backend.** All parameters must share a dtype and an array
  module; a mix is refused with a ``TypeError`` (build one optimiser per dtype).
* **Parameters without a gradient** in a step hold a zero gradient, exactly like
  PyTorch with ``zero_grad(set_to_none=False)``: weight decay and momentum still
  move them. (PyTorch's default ``set_to_none=True`` would skip them instead.)
* **Replaced arrays are adopted.** If ``p.grad`` was set to ``None`` (e.g. by
  ``Module.zero_grad``) or to a fresh array, or ``p.data`` was rebound, the next
  :meth:`Optimizer.step` (or access to :attr:`flat_grads` / :attr:`flat_params`)
  copies it into the flat buffer and restores the view. This costs one identity
  check per parameter per step.
"""
from __future__ import annotations

import concurrent.futures
import os

from .. import backend
from ..autograd import Tensor

# Cache blocking on the CPU: a step runs its dozen ufuncs on blocks of this many
# values, so the block's parameters, gradients, moments and scratch (~1.5 MiB in
# float32) stay in L2 between operations -- about 25% faster than whole-buffer
# passes for a 440k-parameter VAE on 2 cores. (Timed alone, an Adam step is faster
# with 2^17-2^18 values per block -- benchmarks/bench_adam.py -- where its buffers stay
# in the shared cache; inside training steps, which evict them, 2^18 was not faster:
# mnist-dense 4.5-6.1 against 4.5-5.6 ms in fresh processes.) On CuPy the whole buffer
# is one block.
CPU_BLOCK = 1 << 16
_POOLS = {}


def _cpu_workers() -> int:
    """Threads for a step on NumPy: the core count (at most 4), or ``MINIVAE_CPU_THREADS``,
    which also sets the batch parts of the convolutions (:mod:`minivae.ops._parallel`)."""
    env = os.environ.get("MINIVAE_CPU_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(4, os.cpu_count() or 1))


def _thread_pool(workers: int):
    """One shared pool per size (threads are started once, on the first step)."""
    if workers not in _POOLS:
        _POOLS[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="minivae-optim")
    return _POOLS[workers]


class Optimizer:
    """Base class: flat parameter/gradient buffers, ``zero_grad``, ``state_dict``.

    Subclasses pass their hyperparameters (the one ``param_groups[0]`` dict) to
    ``__init__``, name their flat state buffers in ``_state_names`` (e.g.
    ``("m", "v")``, allocated as zeros) and implement ``_update(flat_params,
    flat_grads)``, called by :meth:`step` after ``t`` was incremented.
    """

    _state_names: tuple = ()

    def __init__(self, params, hyperparameters: dict):
        params = _as_parameter_list(params)
        self.params = params
        self._shapes = [tuple(p.shape) for p in params]
        module = backend.get_array_module(*(p.data for p in params))
        self._xp = module
        dtypes = sorted({str(p.dtype) for p in params})
        if len(dtypes) > 1:
            raise TypeError(f"{type(self).__name__}: parameters have mixed dtypes {dtypes}; "
                            "cast the model to one dtype or build one optimiser per dtype")
        modules = {backend.get_array_module(p.data).__name__ for p in params}
        if len(modules) > 1:
            raise TypeError(f"{type(self).__name__}: parameters live on different backends "
                            f"{sorted(modules)}; move them all to one backend first")
        dtype = params[0].dtype
        total = sum(p.size for p in params)
        self._flat_params = module.empty(total, dtype=dtype)
        self._flat_grads = module.zeros(total, dtype=dtype)
        self._param_views, self._grad_views = [], []
        offset = 0
        for p in params:
            n = p.size
            pv = self._flat_params[offset:offset + n].reshape(p.shape)
            gv = self._flat_grads[offset:offset + n].reshape(p.shape)
            pv[...] = p.data
            if p.grad is not None:  # keep a gradient computed before the optimiser existed
                gv[...] = p.grad
            p.data, p.grad = pv, gv
            self._param_views.append(pv)
            self._grad_views.append(gv)
            offset += n
        # one dict, like a PyTorch param_group: schedulers may write group["lr"]
        self.param_groups = [dict(hyperparameters)]
        self.t = 0  # number of steps taken
        self._state = {name: module.zeros(total, dtype=dtype) for name in self._state_names}
        self._scratch = None

    # -- hyperparameters -------------------------------------------------------------
    @property
    def defaults(self) -> dict:
        return self.param_groups[0]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = float(value)
        if not value >= 0.0:
            raise ValueError(f"learning rate must be >= 0, got {value}")
        self.param_groups[0]["lr"] = value

    # -- flat buffers ----------------------------------------------------------------
    @property
    def flat_params(self):
        """All parameters as one 1-D array; each ``p.data`` is a view of it."""
        self._adopt_replaced()
        return self._flat_params

    @property
    def flat_grads(self):
        """All gradients as one 1-D array; each ``p.grad`` is a view of it."""
        self._adopt_replaced()
        return self._flat_grads

    def _adopt_replaced(self) -> None:
        """Copy any rebound ``p.data`` / replaced or ``None`` ``p.grad`` into the flat buffers."""
        for p, pv, gv in zip(self.params, self._param_views, self._grad_views):
            if p.data is not pv:
                _check_shape(p.data, pv, "data")
                pv[...] = p.data
                p.data = pv
            g = p.grad
            if g is not gv:
                if g is None:
                    gv.fill(0)
                else:
                    _check_shape(g, gv, "grad")
                    gv[...] = g
                p.grad = gv

    def _for_each_block(self, kernel, count: int) -> None:
        """Call ``kernel(block_slice, *scratch)`` on every block of the flat buffers.

        On NumPy the blocks (65,536 values, cache-sized) are shared among a small
        thread pool -- NumPy's ufuncs release the GIL, so the update runs on every
        core as PyTorch's does. Each worker owns ``count`` scratch arrays. On CuPy
        there is one block and one call (a fused kernel).
        """
        total = self._flat_params.size
        if self._xp.__name__ != "numpy":
            scratch = self._scratch_for(0, count, total)
            kernel(slice(0, total), *scratch)
            return
        block = min(total, CPU_BLOCK)
        starts = list(range(0, total, block))
        workers = min(len(starts), _cpu_workers())

        def work(w):
            scratch = self._scratch_for(w, count, block)
            for start in starts[w::workers]:
                stop = min(start + block, total)
                kernel(slice(start, stop), *(a[:stop - start] for a in scratch))

        if workers == 1:
            work(0)
        else:
            list(_thread_pool(workers).map(work, range(workers)))

    def _scratch_for(self, worker: int, count: int, length: int):
        if self._scratch is None:
            self._scratch = {}
        arrays = self._scratch.get(worker)
        if arrays is None or len(arrays) < count or arrays[0].size < length:
            arrays = [self._xp.empty(length, dtype=self._flat_params.dtype) for _ in range(count)]
            self._scratch[worker] = arrays
        return arrays[:count]

    # -- the API ---------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Fill the flat gradient buffer with zeros; every ``p.grad`` stays its view."""
        self._flat_grads.fill(0)
        for p, gv in zip(self.params, self._grad_views):
            if p.grad is not gv:
                p.grad = gv

    def step(self) -> None:
        """One update of every parameter from its (accumulated) gradient."""
        self._adopt_replaced()
        self.t += 1
        self._update(self._flat_params, self._flat_grads)

    def _update(self, params, grads) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """A copy of the state: ``type``, ``t``, the hyperparameters, ``param_shapes``
        and one flat array per state buffer (Adam: ``m``, ``v``; SGD: ``momentum_buffer``)."""
        state = {"type": type(self).__name__, "t": int(self.t),
                 "param_shapes": [list(s) for s in self._shapes]}
        state.update({k: _plain(v) for k, v in self.param_groups[0].items()})
        state.update({name: buf.copy() for name, buf in self._state.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` in place (the flat buffers keep their identity)."""
        problems = self._state_problems(state)
        if problems:
            raise ValueError(f"cannot load {type(self).__name__} state: " + "; ".join(problems))
        for name, buf in self._state.items():
            buf[...] = self._xp.asarray(state[name], dtype=buf.dtype)
        for key in self.param_groups[0]:
            value = state[key]
            self.param_groups[0][key] = tuple(value) if isinstance(value, list) else value
        self.t = int(state["t"])

    def _state_problems(self, state: dict) -> list:
        """Every reason ``state`` does not fit this optimiser (empty when it fits)."""
        problems = []
        if state.get("type") != type(self).__name__:
            problems.append(f"it is {state.get('type')!r} state, this is {type(self).__name__}")
            return problems
        shapes = [tuple(s) for s in state.get("param_shapes", [])]
        if shapes != self._shapes:
            problems.append(f"parameter shapes differ: state has {len(shapes)} parameters "
                            f"{shapes}, optimiser has {len(self._shapes)} {self._shapes}")
        known = ("type", "t", "param_shapes", *self.param_groups[0], *self._state)
        missing = [k for k in known if k not in state]
        unexpected = [k for k in state if k not in known]
        if missing:
            problems.append(f"missing entries {missing}")
        if unexpected:
            problems.append(f"unexpected entries {unexpected}")
        for name, buf in self._state.items():
            if name in state and tuple(state[name].shape) != tuple(buf.shape):
                problems.append(f"{name!r} has shape {tuple(state[name].shape)}, expected {tuple(buf.shape)}")
        return problems

    def __repr__(self):
        hyper = ", ".join(f"{k}={v}" for k, v in self.param_groups[0].items())
        return f"{type(self).__name__}({len(self.params)} tensors, {self._flat_params.size} values, {hyper})"


def _as_parameter_list(params) -> list:
    """Tensors from a Module, a Tensor or an iterable of Tensors (each once, in order)."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    elif isinstance(params, Tensor):
        params = [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"optimiser parameters must be a Module or an iterable of Tensors, "
                        f"got {type(params).__name__}") from None
    out, seen = [], set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"optimiser parameter {i} is a {type(p).__name__}, not a Tensor/Parameter")
        if not p.is_leaf:
            raise ValueError(f"optimiser parameter {i} is the result of an operation, not a leaf; "
                             "optimise the leaf tensors (the model's parameters)")
        if id(p) not in seen:  # a parameter shared by two layers is updated once
            seen.add(id(p))
            out.append(p)
    if not out:
        raise ValueError("optimiser got an empty parameter list")
    return out


def _check_shape(array, view, what):
    if tuple(array.shape) != tuple(view.shape):
        raise ValueError(f"a parameter's {what} was replaced by an array of shape {tuple(array.shape)}, "
                         f"but the parameter has shape {tuple(view.shape)}")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
