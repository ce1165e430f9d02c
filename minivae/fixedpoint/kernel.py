"""The transition operator T of a high-capacity β-VAE and its order parameter E
(math.md §7; Taming VAEs §3.1–3.2, App. A).

With a uniform-box latent tiled into K cells of prior mass π_k and a Gaussian decoder
N(x; μ_k, σ²I) that is constant on each cell, the β-ELBO is maximised by

    W_ik  = π_k exp(−‖x_i − μ_k‖²/τ) / Σ_l π_l exp(−‖x_i − μ_l‖²/τ),   τ = 2βσ²
    T(μ)_k = Σ_i W_ik x_i / Σ_i W_ik

(a soft k-means / deterministic-annealing step at temperature τ). Everything here is
batched over many temperatures: ``mu`` has shape (B, K, D) and ``tau`` shape (B,).

How :func:`transition` stays exact in the log domain yet cheap (it is the hot loop):

* The row-constant ‖x_i‖² and the column-constant ‖μ_k‖² go into one GEMM with
  augmented vectors, [x_i, 1, −‖x_i‖²]·[2μ_k/τ; log π_k − ‖μ_k‖²/τ; 1/τ], which
  yields the logits −‖x_i − μ_k‖²/τ + log π_k − max log π directly: they are ≤ 0,
  so no row-max pass is needed to make exp safe. The GEMM is scaled by log2(e) and
  followed by exp2, which is about twice as fast as exp on CPUs. In float32 this
  expansion costs absolute logit errors of ~1e-7·(‖x‖² + ‖μ‖²)/τ (the data are
  centred by the solver); in float64 they are ~1e-16·(…)/τ.
* Logits are clamped from below before exp (at −600 in float64, −60 in float32):
  exp of very negative numbers and denormal arithmetic are 10–50× slower on CPUs,
  and the clamped entries are negligible next to what they are summed with
  (see ``_LIMITS``). When no logit of the batch can reach the clamp
  (max‖x‖ + max‖μ‖ is small next to τ) the pass is skipped: same result.
* A row whose largest logit is itself tiny (a point far from every μ_k relative to
  τ) is recomputed with the exact max shift (logsumexp).
* A column with (numerically) zero mass Σ_i W_ik — a cell that no point claims,
  common at small β — is recomputed as a softmax over i of log W_ik (log domain),
  so μ_k still moves to the point(s) that claim it most rather than to 0/0.
* The N points are processed in blocks of rows small enough to stay in cache (and
  to keep each BLAS call single-threaded, so that β chunks can run on threads);
  row sums are a GEMV, which is 3× faster than ``sum`` here.
"""
from __future__ import annotations

import numpy

from .. import backend

# Per dtype: the clamp of the logits before exp; the smallest row sum Σ_k e^logit taken
# as is (below it, the row is redone with the exact max shift); the smallest column mass
# Σ_i W_ik taken as is (below it, the column is redone in the log domain). Clamped
# entries are then at most e^(clamp - log row floor) of their row, and N of them stay
# far below the mass floor: e^-300 ≈ 1e-130 vs 1e-100 (float64), e^-40 ≈ 4e-18 vs 1e-8
# (float32). The clamp is also high enough that e^clamp / K · x stays a normal number.
_LIMITS = {
    numpy.dtype(numpy.float64): (-600.0, numpy.exp(-300.0), 1e-100),
    numpy.dtype(numpy.float32): (-60.0, numpy.float32(numpy.exp(-20.0)), 1e-8),
}
LOG2E = 1.4426950408889634
BLOCK_ELEMENTS = 1 << 18   # entries of W per block: 2 MiB in float64 (an L2 cache)
# Multiply-adds per GEMM call on the CPU path. OpenBLAS runs a GEMM of up to 4·65536 of
# them on one thread; larger ones spread over all cores, which oversubscribes them when
# β chunks already run on threads (and spin-waits badly on a shared machine).
SMALL_GEMM = 1 << 18


def _limits(dtype):
    try:
        return _LIMITS[numpy.dtype(dtype)]
    except KeyError:
        raise TypeError(f"the fixed-point solver computes in float32 or float64, "
                        f"not {numpy.dtype(dtype).name}") from None


def augment_points(x):
    """[x_i, 1, −‖x_i‖²] (N, D+2): the left factor of the logits GEMM (module doc)."""
    xp = backend.get_array_module(x)
    ones = xp.ones((x.shape[0], 1), dtype=x.dtype)
    return xp.concatenate([x, ones, -(x * x).sum(axis=1, keepdims=True)], axis=1)


def augment_cells(mu, tau, log_prior=None):
    """[2μ_k/τ; log π_k − ‖μ_k‖²/τ; 1/τ] (B, D+2, K): the right factor of the GEMM.

    ``log_prior`` (K,) may be unnormalised; it is shifted so that its maximum is 0,
    which keeps every logit ≤ 0 (only differences between cells matter).
    """
    xp = backend.get_array_module(mu)
    B, K, D = mu.shape
    inv_tau = (1.0 / tau).astype(mu.dtype)[:, None]
    out = xp.empty((B, D + 2, K), dtype=mu.dtype)
    out[:, :D, :] = (2.0 * mu * inv_tau[:, :, None]).transpose(0, 2, 1)
    out[:, D, :] = -(mu * mu).sum(axis=2) * inv_tau
    if log_prior is not None:
        out[:, D, :] += (log_prior - log_prior.max()).astype(mu.dtype)
    out[:, D + 1, :] = inv_tau
    return out


def transition(x, mu, tau, log_prior=None, *, x_aug=None, block_rows=None):
    """One application of T to a batch of decoders (math.md §7).

    x: (N, D) points; mu: (B, K, D) reconstruction vectors; tau: (B,) temperatures
    2βσ²; log_prior: optional (K,) log cell masses (uniform when None).
    Returns ``(T, mass)``: T(μ) of shape (B, K, D) and the cell masses
    Σ_i W_ik of shape (B, K) (w_k of the Lipschitz projection is mass / N).
    """
    xp = backend.get_array_module(mu)
    B, K, D = mu.shape
    N = x.shape[0]
    dtype = mu.dtype
    clamp, row_floor, mass_floor = _limits(dtype)
    if x_aug is None:
        x_aug = augment_points(x)
    cells = augment_cells(mu, tau, log_prior)
    # base-2 logits for the bulk: exp2 is about twice as fast as exp on CPUs
    cells2 = cells * dtype.type(LOG2E)
    clamp2 = xp.asarray(clamp * LOG2E, dtype=dtype)
    # at high temperature no logit can reach the clamp: skip that pass (same result)
    need_clamp = _lowest_logit(x_aug, mu, tau, log_prior) < 0.9 * clamp
    if block_rows is None:
        block_rows = default_block_rows(B, K, D)
    block_rows = max(1, min(int(block_rows), N))
    acc = xp.zeros((B, D + 1, K), dtype=dtype)       # Σ_i W_ik [x_i; 1]
    log_z = xp.empty((B, N), dtype=dtype)           # log Σ_k exp(logit_ik)
    buf = xp.empty((B, block_rows, K), dtype=dtype)
    rhs = xp.empty((B, D + 1, block_rows), dtype=dtype)
    ones = xp.ones((K, 1), dtype=dtype)
    for start in range(0, N, block_rows):
        stop = min(start + block_rows, N)
        n = stop - start
        w = buf[:, :n]
        xp.matmul(x_aug[start:stop], cells2, out=w)    # base-2 logits, all ≤ 0
        if need_clamp:
            xp.maximum(w, clamp2, out=w)
        xp.exp2(w, out=w)
        row_sum = xp.matmul(w, ones)[:, :, 0]          # (B, n); GEMV beats sum()
        log_z[:, start:stop] = xp.log(row_sum)
        far = row_sum < row_floor
        if bool(far.any()):
            _exact_rows(w, row_sum, log_z[:, start:stop], far, x_aug[start:stop], cells, clamp)
        inv = 1.0 / row_sum
        rhs[:, :D, :n] = x[start:stop].T[None] * inv[:, None, :]
        rhs[:, D, :n] = inv
        acc += xp.matmul(rhs[:, :, :n], w)
    mass = acc[:, D, :]
    t = (acc[:, :D, :] / xp.maximum(mass, mass_floor)[:, None, :]).transpose(0, 2, 1)
    t = xp.ascontiguousarray(t)
    empty = mass < mass_floor
    if bool(empty.any()):
        _exact_columns(t, empty, x, x_aug, cells, log_z, clamp,
                       max(1, block_rows * K // N))
    return t, mass


def _lowest_logit(x_aug, mu, tau, log_prior):
    """A lower bound on every logit −‖x_i − μ_k‖²/τ + log π_k − max log π of the batch:
    ‖x_i − μ_k‖ ≤ max‖x‖ + max‖μ‖ (both about the same origin)."""
    xp = backend.get_array_module(mu)
    D = mu.shape[2]
    reach = xp.sqrt(xp.max(-x_aug[:, D + 1])) + xp.sqrt((mu * mu).sum(axis=2).max(axis=1))
    lowest = -float(xp.max(reach * reach / tau))
    if log_prior is not None:
        lowest += float(log_prior.min() - log_prior.max())
    return lowest


def _exact_rows(w, row_sum, log_z, far, x_rows, cells, clamp):
    """Recompute, with the exact max shift (logsumexp), the rows whose every logit
    fell near the clamp. Each such row is stored already normalised (W itself), its
    sum set to 1 so the caller treats it like any other, and its log Z made exact."""
    xp = backend.get_array_module(w)
    b, i = xp.nonzero(far)
    logits = xp.matmul(x_rows[i][:, None, :], cells[b])[:, 0, :]     # (R, K)
    shift = logits.max(axis=1, keepdims=True)
    e = xp.exp(xp.maximum(logits - shift, clamp))
    total = e.sum(axis=1, keepdims=True)
    w[b, i] = e / total
    row_sum[b, i] = 1.0
    log_z[b, i] = xp.log(total[:, 0]) + shift[:, 0]


def _exact_columns(t, empty, x, x_aug, cells, log_z, clamp, col_block):
    """T_k for cells of zero mass, in the log domain: a softmax over i of log W_ik
    (entries below e^clamp of the column's largest are negligible and clamped).
    Columns go ``col_block`` at a time to keep each GEMM small."""
    xp = backend.get_array_module(t)
    for b in range(t.shape[0]):
        (cols,) = xp.nonzero(empty[b])
        for first in range(0, int(cols.size), col_block):
            ks = cols[first:first + col_block]
            log_w = xp.matmul(x_aug, cells[b][:, ks]) - log_z[b][:, None]   # (N, m)
            log_w -= log_w.max(axis=0, keepdims=True)
            weights = xp.exp(xp.maximum(log_w, clamp, out=log_w), out=log_w)
            weights /= weights.sum(axis=0, keepdims=True)
            t[b, ks] = weights.T @ x


def default_block_rows(batch, cells, dim=2):
    """Rows of W per block: about BLOCK_ELEMENTS entries, and every GEMM of the block
    within SMALL_GEMM multiply-adds."""
    by_cache = BLOCK_ELEMENTS // max(1, batch * cells)
    by_blas = SMALL_GEMM // max(1, cells * (dim + 2))
    return max(1, min(by_cache, by_blas))


def squared_distances(x, mu):
    """‖x_i − μ_k‖² (B, N, K) from explicit differences, one coordinate at a time: exact
    (no cancellation), for the order parameter and the reference path."""
    out = None
    for d in range(x.shape[1]):
        diff = x[None, :, None, d] - mu[:, None, :, d]
        out = diff * diff if out is None else out + diff * diff
    return out


def log_posterior(x, mu, tau, log_prior=None):
    """log W_ik (B, N, K) by a plain logsumexp over cells: the reference for the
    fast path of :func:`transition` (math.md §7, first equation)."""
    xp = backend.get_array_module(mu)
    logits = -squared_distances(x, mu) / tau[:, None, None]
    if log_prior is not None:
        logits = logits + log_prior
    shift = logits.max(axis=2, keepdims=True)
    return logits - (shift + xp.log(xp.exp(logits - shift).sum(axis=2, keepdims=True)))


def energy(x, mu, tau, log_prior=None, block_rows=64):
    """The order parameter E = (1/N) Σ_i Σ_k W_ik ‖x_i − μ_k‖² (B,), with W = W(μ)
    (math.md §7), from explicit differences; blocks of rows keep temporaries in cache."""
    xp = backend.get_array_module(mu)
    N = x.shape[0]
    total = xp.zeros(mu.shape[0], dtype=mu.dtype)
    for b in range(mu.shape[0]):
        for start in range(0, N, block_rows):
            d2 = squared_distances(x[start:start + block_rows], mu[b:b + 1])[0]
            e = d2 * (-1.0 / tau[b])
            if log_prior is not None:
                e += log_prior
            e -= e.max(axis=1, keepdims=True)
            xp.maximum(e, -700.0, out=e)       # exp below e^-708 is slow and irrelevant
            xp.exp(e, out=e)
            # Σ_k W_ik d_ik = Σ_k e_ik d_ik / Σ_k e_ik, row by row
            total[b] += ((e * d2).sum(axis=1) / e.sum(axis=1)).sum()
    return total / N
