"""Batch parallelism for the CPU: one part of the batch per core, each with one BLAS thread.

Why. On a few cores, a convolution is GEMMs plus the copies around them (im2col,
col2im). NumPy runs the copies on one thread, and the BLAS's own threading splits
each GEMM into pieces too small to keep two cores busy (the batch is already cut
into cache-sized chunks). Splitting the *batch* instead -- core k takes images
[k·N/P, (k+1)·N/P), copies and GEMMs alike -- keeps every core busy through the
whole op, the way PyTorch's CPU convolutions divide their work.

How. A small pool of worker threads (NumPy releases the GIL in copies, ufuncs and
GEMMs); each worker asks OpenBLAS for a single BLAS thread
(``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27). In OpenBLAS's pthreads builds
-- the one NumPy's wheels ship -- that call sets the *process-wide* thread count (the
"local" part only applies to its OpenMP builds; checked in the disassembly of the
library NumPy 2.4 loads), so once the workers exist every BLAS call in the process is
single-threaded. Handing the count back to the caller after each op was measured and
is worse: OpenBLAS's own threads then spin between calls and steal the cores from the
workers. So the large GEMMs outside the convolutions (dense layers) are split over
the workers too (:func:`matmul`); small ones stay whole. The capability is looked up
once, by finding the OpenBLAS that NumPy loaded (Linux: ``/proc/self/maps``). Without
it (another BLAS, another OS), or with ``MINIVAE_CPU_THREADS=1``, there is one part
and the BLAS threads as usual.

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

# Below this many multiply-adds (or rows) a matrix product runs as one call: the hand-off
# to the workers costs tens of microseconds.
MIN_PARALLEL_MACS = 1 << 26
MIN_PARALLEL_ROWS = 64

# Below this much data an op runs as one part. A hand-off to a worker and back costs
# 35-100 us on the 2-core VM (two thread wake-ups; benchmarks/bench_parts.py), and the op
# alone, timed by itself, runs faster as one part up to ~4 MiB. But in whole training
# steps 4 MiB was slower than 1 MiB (in-process A/B, 10 rounds each: mnist-conv 3 and
# cifar-conv 2 of 10 rounds faster): a worker used more often wakes faster for the
# convolutions. Hence 1 MiB.
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
                _STATE["kept_freed_memory"] = _keep_freed_memory()   # one thread churns memory too
    return _STATE["workers"]


# glibc mallopt parameters (malloc.h) and the value minivae sets for both.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 256 << 20


def _keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks below :data:`KEEP_FREED_BYTES` for reuse.

    Why. By default glibc serves blocks above 128 KiB-32 MiB with fresh ``mmap`` pages
    and gives freed memory back to the kernel; every reuse then page-faults and the
    kernel zeroes each page again. The batch parts allocate and free a few MiB of
    temporaries per layer on each worker, so on a cifar-conv step that churn cost
    ≈ 35 ms (≈ 11,000 page faults per step, measured with ``/usr/bin/time``).
    Setting both thresholds (setting one alone switches off glibc's adaptive
    threshold and is worse) keeps that memory in the process; its resident size
    stays near the step's peak. Left alone when the user set ``MALLOC_*`` or
    ``GLIBC_TUNABLES``, and off glibc (returns False)."""
    if any(k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES) and mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))


def _pool():
    if "pool" not in _STATE:
        with _LOCK:
            if "pool" not in _STATE:
                setter = _STATE["setter"]
                setter(1)   # the calling thread runs a part too (and in pthreads builds this is global)
                _STATE["pool"] = concurrent.futures.ThreadPoolExecutor(
                    max(1, cpu_workers() - 1), thread_name_prefix="minivae-cpu", initializer=lambda: setter(1))
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


def chunks(xp, n: int, bytes_per_image: int, target_bytes: int, part: slice | None = None) -> list:
    """Slices of the batch [0, n) (or of its ``part``) of near-equal size, each touching about
    ``target_bytes`` (an L2 cache: a chunk's temporaries are read back while still in
    cache) on the CPU; the whole part on other backends."""
    part = slice(0, n) if part is None else part
    m = part.stop - part.start
    count = 1 if xp.__name__ != "numpy" else max(1, min(m, -(-m * bytes_per_image // target_bytes)))
    bounds = [part.start + m * k // count for k in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def plan(xp, n: int, bytes_per_image: int, target_bytes: int) -> list:
    """The batch as :func:`parts`, each a list of :func:`chunks`."""
    return [chunks(xp, n, bytes_per_image, target_bytes, part) for part in parts(xp, n)]


def map_parts(work, slices: list) -> list:
    """``[work(s) for s in slices]``: the first slice on the calling thread, the others on the
    workers at the same time (one thread hand-off fewer per op than pooling them all)."""
    if len(slices) == 1:
        return [work(slices[0])]
    pool = _pool()
    futures = [pool.submit(work, s) for s in slices[1:]]
    try:
        first = work(slices[0])
    finally:
        concurrent.futures.wait(futures)   # never leave a part running behind an exception
    return [first] + [f.result() for f in futures]


def matmul(xp, a, b):
    """``a @ b`` for 2-D arrays, its rows split over the workers (one BLAS thread each).

    The workers' single-threaded BLAS applies to the whole process in OpenBLAS's
    pthreads builds (see :func:`_pool`), so the GEMMs outside the convolutions --
    dense layers -- are split here the same way instead of being left to one thread."""
    m, k = a.shape
    n = b.shape[1]
    if xp.__name__ != "numpy" or m < MIN_PARALLEL_ROWS or m * n * k < MIN_PARALLEL_MACS or cpu_workers() == 1:
        return a @ b
    out = xp.empty((m, n), dtype=xp.result_type(a, b))
    map_parts(lambda rows: xp.matmul(a[rows], b, out=out[rows]), parts(xp, m))
    return out


def accumulate(total, product):
    """``total + product`` reusing ``total``'s memory (``product`` when total is None): a
    part's running sum over its chunks."""
    if total is None:
        return product
    total += product
    return total


def add_in_order(partials):
    """Σ of the partial results, added in part order (the first one is reused as the sum)."""
    total = partials[0]
    for p in partials[1:]:
        total += p
    return total
