"""Array backend: NumPy on the CPU or CuPy on a CUDA GPU, chosen once.

Everything above this layer obtains its array module through
:func:`get_array_module` (for existing arrays) or :func:`xp` (for new ones), so
model code never branches on the backend (Chainer's ``xp`` idiom). CuPy is
imported lazily, only when it is asked for, so a CPU-only machine never needs it.

The backend is chosen by, in order of precedence: an explicit :func:`use`
call (the CLI's ``--backend`` flag calls it), the ``MINIVAE_BACKEND``
environment variable, and finally ``numpy``.
"""
from __future__ import annotations

import os

import numpy

from .fileio import jsonable

BACKENDS = ("numpy", "cupy")
DTYPES = {"float32": numpy.float32, "float64": numpy.float64}


class BackendError(RuntimeError):
    """A backend was requested that cannot be used on this machine."""


class _State:
    name = None          # "numpy" | "cupy", resolved lazily
    module = None        # the array module itself
    dtype = numpy.float32
    generator = None     # numpy.random.Generator or cupy.random.Generator
    seed = 0


_state = _State()


def _load_cupy():
    """Import CuPy and make sure a GPU is reachable; one clear error otherwise."""
    try:
        import cupy  # noqa: PLC0415  (lazy on purpose: no CuPy import at module level)
    except ImportError:
        raise BackendError(
            "backend 'cupy' needs CuPy: install it from the minivae folder with `pip install -e \".[gpu]\"` "
            "(CUDA 12) or `pip install -e \".[gpu-cuda13]\"` (CUDA 13), "
            "or use --backend numpy") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing, no device, ...
        raise BackendError(f"backend 'cupy' found no usable CUDA GPU ({exc}); "
                           "use --backend numpy") from None
    if count < 1:
        raise BackendError("backend 'cupy' found no CUDA GPU; use --backend numpy")
    return cupy


def use(name: str | None = None, dtype: str | None = None, seed: int | None = None):
    """Select the backend (``'numpy'`` or ``'cupy'``), default dtype and RNG seed.

    Any argument left as ``None`` keeps its current value. Returns the array module.
    """
    if name is not None:
        if name not in BACKENDS:
            raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
        _state.module = numpy if name == "numpy" else _load_cupy()
        _state.name = name
        _state.generator = None
    if dtype is not None:
        set_default_dtype(dtype)
    if seed is not None:
        manual_seed(seed)
    return xp()


def _ensure_selected():
    if _state.name is None:
        use(os.environ.get("MINIVAE_BACKEND", "numpy"))


def name() -> str:
    """The name of the active backend."""
    _ensure_selected()
    return _state.name


def xp():
    """The active array module (``numpy`` or ``cupy``) for creating new arrays."""
    _ensure_selected()
    return _state.module


def get_array_module(*arrays):
    """The array module owning ``arrays`` (CuPy if any is a CuPy array, else NumPy).

    Unlike :func:`xp` this never imports CuPy: an array can only be a CuPy array
    if CuPy is already loaded.
    """
    for a in arrays:
        module = type(a).__module__
        if module.startswith("cupy"):
            import cupy  # noqa: PLC0415  (already imported by whoever made ``a``)
            return cupy
    return numpy


def is_available(backend: str) -> bool:
    """Whether ``backend`` can be used here (for tests that skip CuPy without a GPU)."""
    if backend == "numpy":
        return True
    try:
        _load_cupy()
        return True
    except BackendError:
        return False


def describe() -> str:
    """The active backend in words, for logs and benchmark records: ``'numpy 2.1.0'``,
    ``'cupy 13.3.0 on NVIDIA H200'`` (the device name as the CUDA runtime reports it)."""
    module = xp()
    text = f"{name()} {module.__version__}"
    if name() == "cupy":
        device = module.cuda.runtime.getDeviceProperties(module.cuda.Device().id)["name"]
        text += f" on {device.decode() if isinstance(device, bytes) else device}"
    return text


# --------------------------------------------------------------------------- dtype

def set_default_dtype(dtype) -> None:
    """Set the floating dtype of new tensors and parameters: ``'float32'`` or ``'float64'``."""
    key = numpy.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise BackendError(f"unsupported dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    _state.dtype = DTYPES[key]


def default_dtype():
    """The floating dtype used for new tensors (float32 unless changed)."""
    return _state.dtype


# --------------------------------------------------------------------------- transfer

def to_device(array, dtype=None):
    """Copy a host (NumPy) array or Python value onto the active backend.

    Floating input is cast to ``dtype`` (default: the default dtype); integer and
    boolean arrays keep their kind unless ``dtype`` is given.
    """
    module = xp()
    if dtype is None:
        kind = getattr(array, "dtype", None)
        kind = (kind if kind is not None else numpy.asarray(array).dtype).kind
        dtype = _state.dtype if kind == "f" else None
    return module.asarray(array, dtype=dtype)


def to_host(array) -> numpy.ndarray:
    """A NumPy copy (or view, on the CPU) of any backend array."""
    if hasattr(array, "get") and get_array_module(array) is not numpy:
        return array.get()
    return numpy.asarray(array)


# --------------------------------------------------------------------------- RNG

def manual_seed(seed: int) -> None:
    """Reseed the generator of the active backend (and remember the seed)."""
    _state.seed = int(seed)
    _state.generator = xp().random.default_rng(_state.seed)


def rng():
    """The seeded random generator of the active backend (NumPy/CuPy ``Generator``)."""
    if _state.generator is None:
        _state.generator = xp().random.default_rng(_state.seed)
    return _state.generator


def rng_state() -> dict:
    """A JSON-serialisable snapshot of the generator, for checkpoints."""
    gen = rng()
    if isinstance(gen, numpy.random.Generator):
        return {"backend": "numpy", "bit_generator": jsonable(gen.bit_generator.state)}
    # CuPy generators expose no portable state; record the seed and the draw count
    return {"backend": name(), "seed": _state.seed}


def set_rng_state(state: dict) -> None:
    """Restore a snapshot taken by :func:`rng_state` (exact on NumPy)."""
    if state.get("backend") == "numpy" and name() == "numpy":
        gen = numpy.random.default_rng()
        gen.bit_generator.state = state["bit_generator"]
        _state.generator = gen
    else:
        manual_seed(int(state.get("seed", 0)))
