"""Seeded 2-D data sets for the fixed-point experiments (math.md §7; Taming VAEs Fig. 2, 7).

Every set lies in the latent box [-1, 1]² (the data box = the latent box, math.md §7,
App. A), is generated on the host with its own ``numpy.random.Generator(seed)`` so
that the NumPy and CuPy runs see the very same points, and is returned as a float64
host array of shape (n, 2). The shapes and noise levels are **(choice)**: the paper
shows the figures but not the generators.
"""
from __future__ import annotations

import numpy

BOX = 0.95   # keep points (noise included) inside the latent box [-1, 1]²


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"the number of points must be a positive integer, got {n!r}")
    return int(n)


def _check_count(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"the number of {what} must be a positive integer, got {value!r}")
    return int(value)


def _check_noise(noise):
    if not numpy.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
    return float(noise)


def _split(n, parts):
    """Sizes of ``parts`` groups adding up to ``n`` (as equal as possible)."""
    sizes = numpy.full(parts, n // parts)
    sizes[: n % parts] += 1
    return sizes


def lines(n=1000, n_lines=3, noise=0.01, seed=0):
    """A mixture of ``n_lines`` line segments (Taming VAEs Fig. 2): points uniform
    along random segments of length >= 0.8, plus isotropic Gaussian noise."""
    n, n_lines, noise = _check_n(n), _check_count(n_lines, "lines"), _check_noise(noise)
    rng = numpy.random.default_rng(seed)
    parts = []
    for size in _split(n, n_lines):
        while True:   # rejection: segments long enough to show structure along them
            a, b = rng.uniform(-0.85, 0.85, size=(2, 2))
            if numpy.linalg.norm(b - a) >= 0.8:
                break
        t = rng.uniform(0.0, 1.0, size=(size, 1))
        parts.append(a + t * (b - a) + noise * rng.standard_normal((size, 2)))
    return _finish(parts, rng)


def circles(n=1000, n_circles=2, noise=0.01, seed=0):
    """A mixture of ``n_circles`` circles (Taming VAEs Fig. 7): random centres in
    [-0.45, 0.45]², radii in [0.2, 0.45], points uniform in angle plus Gaussian noise."""
    n, n_circles, noise = _check_n(n), _check_count(n_circles, "circles"), _check_noise(noise)
    rng = numpy.random.default_rng(seed)
    parts = []
    for size in _split(n, n_circles):
        centre = rng.uniform(-0.45, 0.45, size=2)
        radius = rng.uniform(0.2, 0.45)
        angle = rng.uniform(0.0, 2.0 * numpy.pi, size=size)
        ring = numpy.stack([numpy.cos(angle), numpy.sin(angle)], axis=1)
        parts.append(centre + radius * ring + noise * rng.standard_normal((size, 2)))
    return _finish(parts, rng)


def gaussians(n=1000, n_clusters=1, std=(0.3, 0.1), seed=0):
    """``n_clusters`` Gaussian clusters with random centres in [-0.5, 0.5]² (a single
    cluster is centred at the origin); ``std`` is the standard deviation along the two
    axes (anisotropic by default, so that the first split has one clear direction)."""
    n, n_clusters = _check_n(n), _check_count(n_clusters, "clusters")
    std = numpy.broadcast_to(numpy.asarray(std, dtype=float), (2,))
    if not numpy.all(numpy.isfinite(std)) or numpy.any(std <= 0):
        raise ValueError(f"std must be positive and finite, got {std.tolist()}")
    rng = numpy.random.default_rng(seed)
    centres = (numpy.zeros((1, 2)) if n_clusters == 1
               else rng.uniform(-0.5, 0.5, size=(n_clusters, 2)))
    parts = [c + std * rng.standard_normal((size, 2))
             for c, size in zip(centres, _split(n, n_clusters))]
    return _finish(parts, rng)


def two_points(a=(0.5, 0.0)):
    """The two-point set {+a, -a} (math.md §7: β_c = ‖a‖²/σ²)."""
    a = numpy.asarray(a, dtype=float).reshape(-1)
    if a.shape != (2,) or not numpy.all(numpy.isfinite(a)):
        raise ValueError(f"a must be a finite 2-vector, got {a.tolist()}")
    return numpy.stack([a, -a])


def _finish(parts, rng):
    x = numpy.concatenate(parts, axis=0)
    x = x[rng.permutation(len(x))]            # mixtures interleaved, not in blocks
    return numpy.clip(x, -BOX, BOX)


DATASETS = {"lines": lines, "circles": circles, "gaussians": gaussians,
            "two-points": lambda n=2, seed=0: two_points()}


def make(name, n=1000, seed=0):
    """The built-in data set ``name`` (one of :data:`DATASETS`) with ``n`` points."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if name == "two-points":
        return two_points()
    return DATASETS[name](n=n, seed=seed)
