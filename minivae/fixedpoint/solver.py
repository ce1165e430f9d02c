"""The coupled fixed-point iteration for many β at once (math.md §7; Taming VAEs
§3.1–3.3, App. A).

Protocol (App. A, constants are parameters): μ_k starts at the cell centres of a
``grid_size``² grid on the latent box [-1, 1]² plus uniform noise (±0.01), then

    μ ← (1 − η) μ + η · P·T(μ)        (η = 0.5; P = I without a Lipschitz constraint)

until 400 iterations or ‖Δμ‖ < 1e-3, where ‖Δμ‖ is the Frobenius norm of the change
of the K×D matrix μ in one smoothed step. A β that reaches the cap is reported with
``converged = False``: its μ is where the iteration stopped, not a fixed point.

Two ways to start (``init``):

* ``cold`` (the paper's protocol): every β starts from the same noisy grid. Every β is
  iterated independently — it stops on its own, and its result does not depend on
  which other β share its batch — but up to ``chunk_size`` of them are advanced
  together as one (B, K, D) array: a pool that drops a β the moment it stops and
  takes the next from the queue, so the batch stays full and stopped β cost nothing.
  On the CPU, ``workers`` threads each run such a pool (NumPy releases the GIL in its
  kernels); on a GPU one pool with a large chunk is the fast way.
* continuation, ``down`` or ``up``: the β are solved one after the other, from the
  largest down (``down``: deterministic annealing, Rose 1998, Proc. IEEE 86(11) §III:
  the temperature τ = 2βσ² is lowered) or from the smallest up (``up``). The first β
  starts from the noisy grid; each next one from the fixed point of its neighbour in
  the sweep plus fresh uniform noise of the same size (±init_noise). The noise is what
  lets cells that sit on top of each other (a cluster, the collapsed state) split when
  they become unstable: identical μ_k stay identical under T. Inherently sequential:
  one β at a time, one thread.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy

from .. import backend
from .lipschitz import LipschitzConstraint
from .kernel import augment_points, default_block_rows, energy, transition

ETA = 0.5            # (choice) smoothing
MAX_ITER = 400
TOL = 1e-3
INIT_NOISE = 0.01    # (choice) uniform noise on the cell centres
BOX = (-1.0, 1.0)    # (choice) latent box = data box
INITS = ("cold", "down", "up")


@dataclasses.dataclass
class FixedPoints:
    """What :func:`solve` returns; all arrays are NumPy (host) arrays.

    betas (n,), mu (n, K, D) the fixed points, energy (n,) the order parameter E(β),
    n_iter (n,) iterations done, converged (n,) whether ‖Δμ‖ < tol was reached,
    last_step (n,) the final ‖Δμ‖, mu0 (K, D) the grid start (of every β when cold, of
    the first β of the chain with continuation), centres (K, 2) the cell centres (None
    when ``mu0`` was given), trajectories {index of β: (T+1, K, D)}, init how the β
    were started ('cold', 'down' or 'up').
    """
    betas: numpy.ndarray
    sigma: float
    mu: numpy.ndarray
    energy: numpy.ndarray
    n_iter: numpy.ndarray
    converged: numpy.ndarray
    last_step: numpy.ndarray
    mu0: numpy.ndarray
    centres: numpy.ndarray | None
    trajectories: dict
    init: str = "cold"


def cell_centres(grid_size=32, box=BOX):
    """Centres of a grid_size × grid_size tiling of the square ``box`` (K, 2), row-major."""
    grid_size = check_grid_size(grid_size)
    lo, hi = float(box[0]), float(box[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"the latent box must be (low, high) with low < high, got {box!r}")
    c = lo + (hi - lo) * (numpy.arange(grid_size) + 0.5) / grid_size
    return numpy.stack(numpy.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)


def initial_mu(centres, noise=INIT_NOISE, seed=0):
    """Cell centres plus uniform noise in [−noise, noise] (App. A), drawn on the host
    from ``numpy.random.default_rng(seed)`` so every backend starts identically."""
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"init_noise must be a finite number >= 0, got {noise!r}")
    rng = numpy.random.default_rng(seed)
    return centres + rng.uniform(-noise, noise, size=centres.shape)


def check_grid_size(grid_size):
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, numpy.integer)):
        raise TypeError(f"grid_size must be an integer, got {grid_size!r}")
    if grid_size < 2:
        raise ValueError(f"grid_size must be at least 2 (a grid_size × grid_size grid of "
                         f"cells), got {grid_size}")
    return int(grid_size)


def check_sigma(sigma):
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise TypeError(f"sigma must be a number, got {sigma!r}") from None
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma (the decoder standard deviation) must be > 0, got {sigma}")
    return sigma


def check_betas(betas):
    arr = numpy.atleast_1d(numpy.asarray(betas, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"betas must be one number or a non-empty 1-D list, got shape {arr.shape}")
    if not numpy.all(numpy.isfinite(arr)) or numpy.any(arr <= 0):
        bad = arr[~(numpy.isfinite(arr) & (arr > 0))]
        raise ValueError(f"every β must be a finite number > 0, got {bad[:5].tolist()}")
    return arr


def check_points(x):
    """A finite (N, D) host array with N ≥ 1."""
    try:
        arr = numpy.asarray(backend.to_host(x), dtype=float)
    except (TypeError, ValueError):
        raise TypeError("the data must be a numeric array of shape (N, D)") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"the data must be a non-empty array of shape (N, D), "
                         f"got shape {arr.shape}")
    if not numpy.all(numpy.isfinite(arr)):
        raise ValueError("the data contain NaN or inf; remove or fix those points")
    return arr


def solve(x, betas, sigma=1.0, *, grid_size=32, box=BOX, eta=ETA, max_iter=MAX_ITER,
          tol=TOL, init_noise=INIT_NOISE, seed=0, prior=None, mu0=None, lipschitz=None,
          dtype="float64", chunk_size=None, workers=None, record=(), block_rows=None,
          init="cold", progress=None):
    """Solve the fixed point of every β in ``betas`` (math.md §7); see the module doc.

    x (N, D) data; sigma the decoder standard deviation; prior (K,) optional cell
    masses (uniform by default); mu0 (K, D) optional start instead of the noisy grid
    (required when D != 2); lipschitz a :class:`LipschitzConstraint` (or None);
    dtype 'float64' (default: exact at small β) or 'float32' (about 2× faster on
    CPUs, logits accurate to ~1e-7·(‖x‖² + ‖μ‖²)/τ about the data mean);
    chunk_size β per batch (default 4 on NumPy, all on CuPy); workers threads
    (default: min(2, CPUs) on NumPy, 1 on CuPy);
    record the indices of β whose whole trajectory is kept;
    init 'cold' (every β from the noisy grid), 'down' or 'up' (continuation, module
    doc; chunk_size and workers are then 1); progress an optional callable
    ``progress(done, total, converged)`` called as each β stops.
    """
    xp = backend.xp()
    host_x = check_points(x)
    sigma = check_sigma(sigma)
    betas = check_betas(betas)
    grid_size = check_grid_size(grid_size)
    if not (0 < eta <= 1):
        raise ValueError(f"the smoothing eta must be in (0, 1], got {eta}")
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    lipschitz = lipschitz or LipschitzConstraint()
    N, D = host_x.shape

    centres = None
    if mu0 is None:
        if D != 2:
            raise ValueError(f"the grid start needs 2-D data (the latent box is 2-D), got D={D}; "
                             "pass mu0 of shape (K, D) for other dimensions")
        centres = cell_centres(grid_size, box)
        start = initial_mu(centres, init_noise, seed)
    else:
        start = numpy.asarray(backend.to_host(mu0), dtype=float)
        if start.ndim != 2 or start.shape[1] != D or not numpy.all(numpy.isfinite(start)):
            raise ValueError(f"mu0 must be a finite array of shape (K, {D}), "
                             f"got shape {start.shape}")
    K = start.shape[0]
    if lipschitz.active and centres is None:
        raise ValueError("the Lipschitz constraint needs the cell grid; do not pass mu0 with it")
    log_prior = _log_prior(prior, K)

    # translation invariance: work around the data mean (better-conditioned GEMM)
    mean = host_x.mean(axis=0)
    dev_x = backend.to_device(host_x - mean, dtype=dtype)
    dev_start = backend.to_device(start - mean, dtype=dtype)
    dev_log_prior = None if log_prior is None else backend.to_device(log_prior, dtype=dtype)
    tau = 2.0 * betas * sigma ** 2
    on_gpu = xp is not numpy
    if init != "cold":        # a chain: each β needs the fixed point of the one before
        chunk_size, workers = 1, 1
    if chunk_size is None:
        chunk_size = len(betas) if on_gpu else 4
    chunk_size = max(1, min(int(chunk_size), len(betas)))
    if workers is None:
        workers = 1 if on_gpu else min(2, os.cpu_count() or 1)
    workers = max(1, min(int(workers), math.ceil(len(betas) / chunk_size)))
    if block_rows is None:
        block_rows = N if on_gpu else default_block_rows(chunk_size, K, D)

    if init == "cold":
        order, start_of = range(len(betas)), (lambda j: dev_start)
    else:
        order = numpy.argsort(-betas if init == "down" else betas, kind="stable").tolist()
        start_of = _Chain(order, dev_start, mean, init_noise, seed, dtype)
    state = _Pool(betas=betas, tau=tau, x=dev_x, start_of=start_of, order=order, K=K,
                  log_prior=dev_log_prior,
                  project=lipschitz.bind(centres, sigma, dtype) if lipschitz.active else None,
                  eta=eta, max_iter=int(max_iter), tol=tol, chunk_size=chunk_size,
                  block_rows=int(block_rows), record=set(int(r) for r in record), mean=mean,
                  progress=progress)
    if init != "cold":
        start_of.pool = state
    # E in float64 from explicit differences: the reported order parameter is exact
    x64 = backend.to_device(host_x - mean, dtype="float64")
    prior64 = None if log_prior is None else backend.to_device(log_prior, dtype="float64")
    energies = numpy.empty(len(betas))

    def order_parameter(first):
        part = slice(first, first + chunk_size)
        energies[part] = backend.to_host(energy(
            x64, backend.to_device(state.mu[part] - mean, dtype="float64"),
            backend.to_device(tau[part], dtype="float64"), prior64,
            block_rows=N if on_gpu else 64))

    firsts = range(0, len(betas), chunk_size)
    if workers == 1:          # in this thread (the GPU path)
        state.run()
        for first in firsts:
            order_parameter(first)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(state.run) for _ in range(workers)]:
                future.result()
            list(pool.map(order_parameter, firsts))
    return FixedPoints(betas=betas, sigma=sigma, mu=state.mu, energy=energies,
                       n_iter=state.n_iter, converged=state.last_step < tol,
                       last_step=state.last_step, mu0=start, centres=centres,
                       trajectories={j: numpy.stack(state.paths[j]) for j in sorted(state.paths)},
                       init=init)


def _log_prior(prior, K):
    if prior is None:
        return None
    p = numpy.asarray(backend.to_host(prior), dtype=float)
    if p.shape != (K,) or not numpy.all(numpy.isfinite(p)) or numpy.any(p <= 0):
        raise ValueError(f"prior must hold {K} positive cell masses, got shape {p.shape}")
    return numpy.log(p / p.sum())


class _Chain:
    """The start of each β of a continuation chain (centred, on the device): the grid
    start for the first β of ``order``, then the fixed point of the previous β of
    ``order`` plus fresh uniform noise in [−noise, noise]. The noise comes from one
    ``default_rng(seed)`` whose first draw made the grid start, so a chain is
    reproducible and its first β starts exactly as a cold start would."""

    def __init__(self, order, first, mean, noise, seed, dtype):
        self.previous = dict(zip(order[1:], order[:-1]))
        self.first, self.mean, self.noise, self.dtype = first, mean, noise, dtype
        self.rng = numpy.random.default_rng(seed)
        self.rng.uniform(-noise, noise, size=first.shape)     # the grid start's draw
        self.pool = None

    def __call__(self, j):
        if j not in self.previous:
            return self.first
        before = self.previous[j]
        if not self.pool.finished[before]:     # chunk_size = workers = 1 guarantees this
            raise RuntimeError("continuation needs the previous β solved first")
        start = self.pool.mu[before] - self.mean
        start = start + self.rng.uniform(-self.noise, self.noise, size=start.shape)
        return backend.to_device(start, dtype=self.dtype)


class _Pool:
    """The shared queue of β and the results; :meth:`run` is one worker's pool."""

    def __init__(self, *, betas, tau, x, start_of, order, K, log_prior, project, eta, max_iter,
                 tol, chunk_size, block_rows, record, mean, progress):
        self.betas, self.tau, self.x, self.log_prior = betas, tau, x, log_prior
        self.start_of = start_of
        self.project, self.eta, self.max_iter, self.tol = project, eta, max_iter, tol
        self.chunk_size, self.block_rows, self.mean = chunk_size, block_rows, mean
        n, D = len(betas), x.shape[1]
        self.x_aug = augment_points(x)
        self.mu = numpy.empty((n, K, D))
        self.n_iter = numpy.zeros(n, dtype=int)
        self.last_step = numpy.full(n, numpy.inf)
        self.finished = numpy.zeros(n, dtype=bool)
        self.record = {j for j in record if 0 <= j < n}
        self.paths = {}
        self.queue = iter(order)
        self.lock = threading.Lock()
        self.progress, self.done, self.n_converged = progress, 0, 0

    def _next(self):
        with self.lock:
            return next(self.queue, None)

    def _finish(self, j, mu, step):
        self.mu[j] = backend.to_host(mu) + self.mean
        self.last_step[j] = step
        with self.lock:
            self.finished[j] = True
            self.done += 1
            self.n_converged += bool(step < self.tol)
            if self.progress is not None:
                self.progress(self.done, len(self.betas), self.n_converged)

    def run(self):
        xp = backend.get_array_module(self.x)
        active, mu = [], None
        while True:
            new = []
            while len(active) + len(new) < self.chunk_size and (j := self._next()) is not None:
                new.append(j)
            if new:
                active += new
                fresh = xp.stack([self.start_of(j) for j in new])
                mu = fresh if mu is None else xp.concatenate([mu, fresh])
                for slot, j in enumerate(new):
                    if j in self.record:
                        self.paths[j] = [backend.to_host(fresh[slot]) + self.mean]
            if not active:
                return
            tau = xp.asarray(self.tau[active], dtype=mu.dtype)
            t, mass = transition(self.x, mu, tau, self.log_prior, x_aug=self.x_aug,
                                 block_rows=self.block_rows)
            if self.project is not None:
                t = self.project(t, mass / self.x.shape[0], guess=mu)
            step = self.eta * (t - mu)
            mu = mu + step
            norms = backend.to_host(xp.sqrt((step * step).sum(axis=(1, 2)))).astype(float)
            keep = []
            for slot, j in enumerate(active):
                self.n_iter[j] += 1
                if j in self.paths:
                    self.paths[j].append(backend.to_host(mu[slot]) + self.mean)
                if norms[slot] < self.tol or self.n_iter[j] >= self.max_iter:
                    self._finish(j, mu[slot], norms[slot])
                else:
                    keep.append(slot)
            if len(keep) < len(active):
                active = [active[s] for s in keep]
                mu = mu[xp.asarray(keep, dtype=numpy.int64)] if keep else mu[:0]
