"""The reconstruction constraints of GECO (Rezende & Viola 2018, "Taming VAEs", Table 1; math.md §3).

Each constraint is a differentiable function of the reconstruction x̂ returning one
value per example (a Tensor of shape (B,)); GECO averages it over the batch and asks
for E[C] ≤ 0:

* **RE**   C = mean_d (x_d − x̂_d)² − κ²                      κ: per-pixel RMS tolerance
* **FRE**  C = mean ‖f(x) − f(x̂)‖² − κ²,  f = per-patch mean and standard deviation
           on a k×k window, per channel (local image statistics)
* **pNCC** C = κ − mean_p ⟨w(x)_p, w(x̂)_p⟩,  w = whitened (zero-mean, unit-norm)
           k×k×C patch; κ ∈ (0, 1) is the required mean correlation
* **CLA**  C = κ − mean_i ⟨onehot(y_i), softmax(c(x̂_i))⟩,  c a classifier trained by
           ``python -m minivae.classifier``; κ ∈ (0, 1) the required (soft) accuracy

Patch statistics are box filters: a stride-1 ``conv2d`` with a constant averaging
kernel, so every constraint is built from existing ops and differentiated by the
autograd (float64 gradient checks in tests/test_constraints.py).

Choices (math.md leaves them open; all are parameters): window k = 5 for FRE and
pNCC; the standard deviation of FRE is sqrt(var + ε), ε = 1e-4 (std floor 0.01 on
[0, 1] images: a flat patch has an infinite-slope sqrt otherwise); pNCC's correlation
is stabilised as (cov + ε) / sqrt((var_x + ε)(var_x̂ + ε)), ε = 4.5e-4 (SSIM's
C₃ = (0.03·L)²/2, Wang et al. 2004) -- an image against itself gives exactly 1 for
every ε, two flat patches correlate 1 (nothing to disagree about), and ε = 0 is the
plain NCC, exactly invariant to affine intensity changes (needs patches with variance).
The normaliser s of GECO's λ update defaults to κ² for RE/FRE (so C/s is the relative
violation, ≥ −1, math.md §3) and to 1 − κ for pNCC/CLA (the same: C/s ≥ −1).
"""
from __future__ import annotations

import math

from .. import backend, ops
from ..autograd import Tensor
from ..ops.conv import conv2d
from .distributions import squared_error

FRE_WINDOW, PNCC_WINDOW = 5, 5
FRE_EPS, PNCC_EPS = 1e-4, 4.5e-4


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_pair(name, x, x_hat):
    if tuple(x.shape) != tuple(x_hat.shape):
        raise ValueError(f"{name}: data of shape {tuple(x.shape)} and reconstruction of shape "
                         f"{tuple(x_hat.shape)} differ")


def _check_images(name, x, window):
    if x.ndim != 4:
        raise ValueError(f"{name}: needs images (B, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(window, int) or window < 1 or window > min(x.shape[2], x.shape[3]):
        raise ValueError(f"{name}: window must be an integer in [1, {min(x.shape[2], x.shape[3])}] "
                         f"for images of shape {tuple(x.shape[1:])}, got {window!r}")


def box_mean(t, window: int, across_channels: bool = False):
    """Mean over every k×k window (stride 1, no padding) of a (B, C, H, W) Tensor.

    Per channel → (B, C, H−k+1, W−k+1); ``across_channels`` averages the k×k×C patch
    → (B, 1, H−k+1, W−k+1). A convolution with the constant kernel 1/(k²[C]).
    """
    b, c, h, w = t.shape
    xp = backend.get_array_module(t.data)
    if across_channels:
        kernel = xp.full((1, c, window, window), 1.0 / (c * window * window), dtype=t.dtype)
        return conv2d(t, Tensor(kernel))
    kernel = xp.full((1, 1, window, window), 1.0 / (window * window), dtype=t.dtype)
    out = conv2d(ops.reshape(t, (b * c, 1, h, w)), Tensor(kernel))
    return ops.reshape(out, (b, c) + tuple(out.shape[2:]))


# --------------------------------------------------------------------- the four constraints

def reconstruction_error(x, x_hat, kappa: float):
    """RE: mean_d (x_d − x̂_d)² − κ² per example (Table 1; the paper's ‖x − x̂‖² − κ²
    up to the factor D, so κ is a per-pixel RMS tolerance)."""
    x, x_hat = _tensor(x), _tensor(x_hat)
    _check_pair("RE", x, x_hat)
    d = math.prod(x.shape[1:])
    return squared_error(x, x_hat) * (1.0 / d) - float(kappa) ** 2


def local_statistics(x, window: int = FRE_WINDOW, eps: float = FRE_EPS):
    """f(x): per-patch mean and standard deviation sqrt(var + ε) on k×k windows, per channel.

    Returns (means, stds), each (B, C, H−k+1, W−k+1); var = E[x²] − E[x]², clipped at 0.
    """
    x = _tensor(x)
    _check_images("local_statistics", x, window)
    mean = box_mean(x, window)
    var = ops.clip(box_mean(x * x, window) - mean * mean, 0.0, None)
    return mean, ops.sqrt(var + float(eps))


def feature_reconstruction_error(x, x_hat, kappa: float, window: int = FRE_WINDOW, eps: float = FRE_EPS):
    """FRE with local image statistics: mean over statistics, channels and patch locations of
    (f(x) − f(x̂))², minus κ² (Table 1; the mean makes κ an RMS tolerance like RE's)."""
    x, x_hat = _tensor(x), _tensor(x_hat)
    _check_pair("FRE", x, x_hat)
    mx, sx = local_statistics(x, window, eps)
    my, sy = local_statistics(x_hat, window, eps)
    dm, ds = mx - my, sx - sy
    per_example = ops.mean(ops.reshape(dm * dm + ds * ds, (x.shape[0], -1)), axis=1) * 0.5
    return per_example - float(kappa) ** 2


def patch_ncc(x, x_hat, window: int = PNCC_WINDOW, eps: float = PNCC_EPS):
    """Correlation ⟨w(x)_p, w(x̂)_p⟩ of whitened k×k×C patches at every location, (B, H', W').

    ⟨w(a), w(b)⟩ = cov(a, b) / sqrt(var a · var b) over the patch's pixels, computed from
    box means and stabilised as (cov + ε) / sqrt((var_a + ε)(var_b + ε)) (see module doc).
    """
    x, x_hat = _tensor(x), _tensor(x_hat)
    _check_pair("pNCC", x, x_hat)
    _check_images("pNCC", x, window)
    b = x.shape[0]
    # one convolution for the three maps that depend on x̂, one for those of x alone
    maps = box_mean(ops.concatenate([x_hat, x_hat * x_hat, x * x_hat], axis=0), window, across_channels=True)
    my, myy, mxy = maps[:b], maps[b:2 * b], maps[2 * b:]
    data = box_mean(ops.concatenate([x, x * x], axis=0), window, across_channels=True)
    mx, mxx = data[:b], data[b:]
    var_x = ops.clip(mxx - mx * mx, 0.0, None)
    var_y = ops.clip(myy - my * my, 0.0, None)
    cov = mxy - mx * my
    ncc = (cov + float(eps)) / ops.sqrt((var_x + float(eps)) * (var_y + float(eps)))
    return ops.reshape(ncc, (b,) + tuple(ncc.shape[2:]))


def pncc_constraint(x, x_hat, kappa: float, window: int = PNCC_WINDOW, eps: float = PNCC_EPS):
    """pNCC: κ − mean over patch locations of the whitened-patch correlation, per example."""
    ncc = patch_ncc(x, x_hat, window, eps)
    return float(kappa) - ops.mean(ops.reshape(ncc, (ncc.shape[0], -1)), axis=1)


def class_probability(logits, labels):
    """⟨onehot(y_i), softmax(logits_i)⟩: the probability given to the true class, (B,)."""
    logits = _tensor(logits)
    xp = backend.get_array_module(logits.data)
    labels = xp.asarray(getattr(labels, "data", labels))
    b, k = logits.shape
    if labels.shape != (b,) or labels.dtype.kind not in "iu":
        raise ValueError(f"CLA: labels must be {b} integer class indices, got {labels.dtype} "
                         f"array of shape {labels.shape}")
    if b and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"CLA: labels must lie in [0, {k - 1}] for a {k}-class classifier, "
                         f"found [{int(labels.min())}, {int(labels.max())}]")
    onehot = (labels[:, None] == xp.arange(k)[None, :]).astype(logits.dtype)
    log_softmax = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return ops.sum(ops.exp(log_softmax) * Tensor(onehot), axis=1)


def classification_constraint(x_hat, labels, classifier, kappa: float):
    """CLA: κ − softmax(c(x̂_i))[y_i] per example; ``classifier`` maps images to logits."""
    return float(kappa) - class_probability(classifier(_tensor(x_hat)), labels)


# --------------------------------------------------------------------- objects GECO holds

class Constraint:
    """A named constraint with its tolerance κ: ``c(x, x̂, labels) -> (B,)`` Tensor.

    ``kind`` is "error" (RE, FRE: C = error − κ², threshold κ² on the error) or
    "similarity" (pNCC, CLA: C = κ − similarity, threshold κ on the similarity).
    """

    name = ""
    kind = "error"
    needs_labels = False

    def __init__(self, kappa):
        self.kappa = _check_kappa(self.name, kappa, self.kind)

    @property
    def default_scale(self) -> float:
        """The normaliser s of the λ update: κ² (error) or 1 − κ (similarity)."""
        return self.kappa ** 2 if self.kind == "error" else 1.0 - self.kappa

    @property
    def threshold(self) -> float:
        """The bound on the underlying measure: error ≤ κ², or similarity ≥ κ."""
        return self.kappa ** 2 if self.kind == "error" else self.kappa

    def measure(self, c: float) -> float:
        """The underlying error or similarity of a constraint value C."""
        return c + self.kappa ** 2 if self.kind == "error" else self.kappa - c

    def __call__(self, x, x_hat, labels=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(kappa={self.kappa})"


def _check_kappa(name, kappa, kind):
    try:
        value = float(kappa)
    except (TypeError, ValueError):
        raise ValueError(f"constraint {name}: kappa must be a number, got {kappa!r}") from None
    if kind == "error" and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"constraint {name}: kappa is a tolerance (per-pixel RMS error) and must be "
                         f"positive, got {kappa!r} (e.g. --kappa 0.1)")
    if kind == "similarity" and not 0 < value < 1:
        raise ValueError(f"constraint {name}: kappa is a target {'correlation' if name == 'pncc' else 'accuracy'} "
                         f"and must lie in (0, 1) (1 cannot be reached), got {kappa!r} (e.g. --kappa 0.9)")
    return value


class RE(Constraint):
    name = "re"

    def __call__(self, x, x_hat, labels=None):
        return reconstruction_error(x, x_hat, self.kappa)


class FRE(Constraint):
    name = "fre"

    def __init__(self, kappa, window: int = FRE_WINDOW, eps: float = FRE_EPS):
        super().__init__(kappa)
        self.window, self.eps = int(window), float(eps)

    def __call__(self, x, x_hat, labels=None):
        return feature_reconstruction_error(x, x_hat, self.kappa, self.window, self.eps)


class PNCC(Constraint):
    name = "pncc"
    kind = "similarity"

    def __init__(self, kappa, window: int = PNCC_WINDOW, eps: float = PNCC_EPS):
        super().__init__(kappa)
        if eps < 0:
            raise ValueError(f"constraint pncc: eps must be >= 0, got {eps}")
        self.window, self.eps = int(window), float(eps)

    def __call__(self, x, x_hat, labels=None):
        return pncc_constraint(x, x_hat, self.kappa, self.window, self.eps)


class CLA(Constraint):
    """Holds the (frozen) classifier; its parameters get no gradient and are not trained."""

    name = "cla"
    kind = "similarity"
    needs_labels = True

    def __init__(self, kappa, classifier):
        super().__init__(kappa)
        if classifier is None or not callable(classifier):
            raise ValueError("constraint cla needs a classifier (a module mapping images to logits)")
        for p in getattr(classifier, "parameters", lambda: [])():
            p.requires_grad = False
        if hasattr(classifier, "eval"):
            classifier.eval()
        self.classifier = classifier

    def __call__(self, x, x_hat, labels=None):
        if labels is None:
            raise ValueError("constraint cla needs the labels of the batch")
        return classification_constraint(x_hat, labels, self.classifier, self.kappa)


CONSTRAINTS = {"re": RE, "fre": FRE, "pncc": PNCC, "cla": CLA}

__all__ = ["CLA", "CONSTRAINTS", "Constraint", "FRE", "PNCC", "RE", "box_mean", "class_probability",
           "classification_constraint", "feature_reconstruction_error", "local_statistics", "patch_ncc",
           "pncc_constraint", "reconstruction_error"]
