"""``sprites``: a dSprites-like dataset generated on the fly, with known factors.

Matthey et al. (2017), *dSprites: Disentanglement testing Sprites dataset*
(github.com/deepmind/dsprites-dataset): white shapes on black, whose images are
a deterministic function of five independent generative factors. We draw the
factors at random (seeded) instead of enumerating dSprites' 737,280-image grid,
and render at any size (28×28 by default, the size of MNIST):

* ``shape``    — index into ``shapes`` (square, ellipse, heart; triangle on request)
* ``scale``    — uniform in [0.5, 1]; the shape's circumradius is ``scale * 0.22 * size``
* ``rotation`` — uniform in [0, 2π) radians, counter-clockwise on screen
* ``x``, ``y`` — uniform in [0, 1]: the centroid's column / row (``y = 0`` is the
  top row) mapped onto the band of positions where the largest shape fits

Like dSprites, rotation is only identifiable modulo each shape's symmetry
(90° for the square, 180° for the ellipse, 120° for the triangle).

Rendering: each shape is a signed distance function (SDF; Quilez's exact box,
heart and equilateral-triangle SDFs, a first-order ellipse SDF), normalised so
that its centroid is at the origin and its circumradius is 1. A pixel's ink is
``clip(0.5 - d, 0, 1)`` with ``d`` the signed distance of the pixel centre in
pixels: a one-pixel linear ramp across the edge, i.e. box-filter anti-aliasing
to first order. Everything is vectorised over images × pixels.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("square", "ellipse", "heart", "triangle")
DEFAULT_SHAPES = ("square", "ellipse", "heart")        # the three shapes of dSprites
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
SCALE_RANGE = (0.5, 1.0)
MAX_RADIUS = 0.22        # circumradius at scale 1, as a fraction of the image size

# Area of each normalised shape (circumradius 1), so the ink of a rendered
# sprite is close to AREA[shape] * (scale * MAX_RADIUS * size)**2 pixels.
AREA = {"square": 2.0, "ellipse": np.pi / 2, "heart": 2.0490, "triangle": 3 * np.sqrt(3) / 4}

_HEART_K = 0.66          # Quilez's heart has circumradius ≈ 0.656 about its centroid…
_HEART_CY = 0.6568       # …which lies at (0, 0.6568) (both measured on a 3000² grid)
_CHUNK = 2048            # images per rendering chunk: keeps temporaries ~10 MB


def _sd_square(x, y):
    """Box of half-side 1/√2 (corners on the unit circle): exact SDF."""
    a = np.float32(np.sqrt(0.5))
    qx, qy = np.abs(x) - a, np.abs(y) - a
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sd_ellipse(x, y):
    """Ellipse with semi-axes (1, 1/2): the first-order SDF |p/r|(|p/r|-1)/|p/r²|.

    Exact on the boundary (where anti-aliasing needs it); at the centre, where
    the formula is 0/0, the true distance 1/2 is used.
    """
    a, b = np.float32(1.0), np.float32(0.5)
    k0 = np.hypot(x / a, y / b)
    k1 = np.hypot(x / (a * a), y / (b * b))
    safe = np.maximum(k1, np.float32(1e-6))
    return np.where(k1 > 1e-6, k0 * (k0 - 1) / safe, -b)


def _sd_heart(x, y):
    """Quilez's heart (tip at the origin, lobes of radius √2/4 at (±1/4, 3/4)), exact SDF,
    shifted to its centroid and scaled to circumradius 1."""
    k = np.float32(_HEART_K)
    x = np.abs(x) * k
    y = y * k + np.float32(_HEART_CY)
    lobe = np.hypot(x - 0.25, y - 0.75) - np.float32(np.sqrt(2.0) / 4)
    t = 0.5 * np.maximum(x + y, 0)
    body = np.sqrt(np.minimum(x * x + (y - 1) ** 2, (x - t) ** 2 + (y - t) ** 2)) * np.sign(x - y)
    return np.where(x + y > 1, lobe, body) / k


def _sd_triangle(x, y):
    """Equilateral triangle pointing up, circumradius 1 (Quilez's exact SDF)."""
    k = np.float32(np.sqrt(3.0))
    r = np.float32(np.sqrt(3.0) / 2)               # half the side length
    px = np.abs(x) - r
    py = y + r / k
    fold = px + k * py > 0                          # reflect into the fundamental region
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0)
    return -np.hypot(px, py) * np.sign(py)


_SDF = {"square": _sd_square, "ellipse": _sd_ellipse, "heart": _sd_heart, "triangle": _sd_triangle}


def check_shapes(shapes) -> tuple:
    """Validate a sequence of shape names; one clear error for an unknown one."""
    shapes = tuple(shapes)
    bad = [s for s in shapes if s not in _SDF]
    if bad or not shapes:
        raise ValueError(f"unknown sprite shape(s) {bad or '(none given)'}; "
                         f"choose among: {', '.join(SHAPES)}")
    if len(set(shapes)) != len(shapes):
        raise ValueError(f"sprite shapes must be distinct, got {list(shapes)}")
    return shapes


def sample_factors(n: int, rng: np.random.Generator, n_shapes: int) -> np.ndarray:
    """``(n, 5)`` float64 factors (shape, scale, rotation, x, y), drawn independently."""
    return np.stack([
        rng.integers(0, n_shapes, size=n).astype(np.float64),
        rng.uniform(*SCALE_RANGE, size=n),
        rng.uniform(0.0, 2 * np.pi, size=n),
        rng.uniform(0.0, 1.0, size=n),
        rng.uniform(0.0, 1.0, size=n),
    ], axis=1)


def centre_pixels(factors: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (column, row) in pixel coordinates (pixel ``j`` covers ``[j, j+1)``).

    The band keeps the largest shape at any rotation, plus its half-pixel
    anti-aliasing ramp, inside the image.
    """
    margin = MAX_RADIUS * size + 0.5
    span = size - 2 * margin
    return margin + factors[:, 3] * span, margin + factors[:, 4] * span


def render(factors: np.ndarray, size: int = 28, shapes=DEFAULT_SHAPES) -> np.ndarray:
    """Render ``(N, 1, size, size)`` float32 images in [0, 1] from ``(N, 5)`` factors."""
    shapes = check_shapes(shapes)
    factors = np.asarray(factors, dtype=np.float64)
    n = len(factors)
    out = np.empty((n, 1, size, size), dtype=np.float32)
    centre = (np.arange(size, dtype=np.float32) + 0.5)            # pixel centres
    cx, cy = centre_pixels(factors, size)
    radius = (factors[:, 1] * MAX_RADIUS * size).astype(np.float32)
    cos, sin = np.cos(factors[:, 2]).astype(np.float32), np.sin(factors[:, 2]).astype(np.float32)
    shape_index = factors[:, 0].astype(np.int64)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        dx = centre[None, None, :] - cx[sl, None, None].astype(np.float32)
        dy = cy[sl, None, None].astype(np.float32) - centre[None, :, None]   # y points up
        c, s, r = cos[sl, None, None], sin[sl, None, None], radius[sl, None, None]
        # rotate the pixel grid by -θ about the centroid, in units of the circumradius
        u, v = (c * dx + s * dy) / r, (c * dy - s * dx) / r
        dist = np.empty(u.shape, dtype=np.float32)
        for k, name in enumerate(shapes):
            pick = shape_index[sl] == k
            if pick.any():
                dist[pick] = _SDF[name](u[pick], v[pick]) * r[pick]   # back to pixels
        np.clip(0.5 - dist, 0.0, 1.0, out=out[sl, 0])
    return out


def make_sprites(n: int, size: int = 28, seed: int = 0, shapes=DEFAULT_SHAPES):
    """``n`` sprites and their factors, a deterministic function of ``seed``
    (a non-negative int, or a sequence of them as ``numpy.random.default_rng`` takes).

    Returns ``(images, factors)``: ``(n, 1, size, size)`` float32 in [0, 1] and
    ``(n, 5)`` float32 with columns :data:`FACTOR_NAMES` (shape as an index into
    ``shapes``, rotation in radians, x/y in [0, 1]).
    """
    shapes = check_shapes(shapes)
    if int(n) != n or n < 1:
        raise ValueError(f"number of sprites must be a positive integer, got {n!r}")
    if int(size) != size or size < 8:
        raise ValueError(f"sprite image size must be an integer >= 8, got {size!r}")
    rng = np.random.default_rng(seed)
    factors = sample_factors(int(n), rng, len(shapes))
    return render(factors, int(size), shapes), factors.astype(np.float32)
