"""Batch parallelism for the CPU: one part of the batch per core, each with one BLAS thread.

Why. On a few cores, a convolution is GEMMs plus the copies around them (im2col,
col2im). NumPy runs the copies on one thread, and the BLAS's own threading splits
each GEMM into pieces too small to keep two cores busy (the batch is already cut
into cache-sized chunks). Splitting the *batch* instead -- core k takes images
[k·N/P, (k+1)·N/P), copies and GEMMs alike -- keeps every core busy through the
whole op, the way PyTorch's CPU convolutions divide their work.

How. A small pool of worker threads (NumPy releases the GIL in copies, ufuncs and
GEMMs); each worker first asks OpenBLAS to use one thread for the calls *it* makes
(``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27; other threads keep their
BLAS threading). The capability is looked up once, by finding the OpenBLAS that
NumPy loaded (Linux: ``/proc/self/maps``). Without it (another BLAS, another OS),
or with ``MINIVAE_CPU_THREADS=1``, there is one part and the BLAS threads as usual.

Numbers. Each part is a fixed slice of the batch and partial sums (weight gradients)
are added in part order, so a run is deterministic; P parts and one part differ only
by the order of floating-point additions. CuPy (any non-NumPy array module) always
gets one part: the GPU parallelises inside each kernel.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import os
import threading

_STATE = {}
_LOCK = threading.Lock()

# Below this much data an op runs as one part: handing work to the threads costs tens
# of microseconds, as much as a small op itself.
MIN_PARALLEL_BYTES = 1 << 20


def _openblas_local_setter():
    """``openblas_set_num_threads_local`` of the OpenBLAS in this process, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


def cpu_workers() -> int:
    """How many batch parts the NumPy backend uses (1 when the capability is missing)."""
    if "workers" not in _STATE:
        with _LOCK:
            if "workers" not in _STATE:
                import numpy  # noqa: F401,PLC0415  (loads the BLAS before it is looked up)
                env = os.environ.get("MINIVAE_CPU_THREADS", "").strip()
                wanted = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
                setter = _openblas_local_setter() if wanted > 1 else None
                _STATE["setter"] = setter
                _STATE["workers"] = wanted if setter is not None else 1
    return _STATE["workers"]


def _pool():
    if "pool" not in _STATE:
        with _LOCK:
            if "pool" not in _STATE:
                setter = _STATE["setter"]
                _STATE["pool"] = concurrent.futures.ThreadPoolExecutor(
                    cpu_workers(), thread_name_prefix="minivae-cpu", initializer=lambda: setter(1))
    return _STATE["pool"]


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: let it start its own pool."""
    global _LOCK
    _STATE.pop("pool", None)
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def parts(xp, n: int, nbytes: int | None = None) -> list:
    """The batch [0, n) as one slice per worker; one slice off the CPU, without workers, or
    when the op touches fewer than ``MIN_PARALLEL_BYTES`` (``nbytes``, if given)."""
    small = nbytes is not None and nbytes < MIN_PARALLEL_BYTES
    count = min(n, cpu_workers()) if xp.__name__ == "numpy" and not small else 1
    bounds = [n * k // count for k in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def map_parts(work, slices: list) -> list:
    """``[work(s) for s in slices]``, the slices on the worker threads when there are several."""
    if len(slices) == 1:
        return [work(slices[0])]
    return list(_pool().map(work, slices))


def add_in_order(partials):
    """Σ of the partial results, added in part order (the first one is reused as the sum)."""
    total = partials[0]
    for p in partials[1:]:
        total += p
    return total
