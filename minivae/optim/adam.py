"""Adam (Kingma & Ba 2015, Algorithm 1) exactly as ``torch.optim.Adam`` computes it.

With gradient g_t (plus L2 weight decay λθ added to the gradient -- Adam's
original coupled decay, *not* AdamW), step t = 1, 2, ...:

    g   ← g_t + λ θ_{t-1}
    m_t = β₁ m_{t-1} + (1 − β₁) g
    v_t = β₂ v_{t-1} + (1 − β₂) g²
    θ_t = θ_{t-1} − (lr / (1 − β₁ᵗ)) · m_t / (√v_t / √(1 − β₂ᵗ) + ε)

which is PyTorch's placement of ε (outside the bias-corrected root), so the two
agree to rounding. On NumPy the step is a dozen in-place ufuncs with ``out=``
(no temporaries) over cache-sized blocks of the flat buffers; on CuPy it is one
fused elementwise kernel over the whole buffer.
"""
from __future__ import annotations

import math

from .optimizer import Optimizer

_CUPY_KERNELS = {}   # per CuPy module object: built on first use


def _cupy_adam_kernel(cupy):
    """The whole Adam update as one CUDA kernel (built on first use)."""
    if cupy not in _CUPY_KERNELS:
        _CUPY_KERNELS[cupy] = cupy.ElementwiseKernel(
            "T grad, float64 b1, float64 b2, float64 wd, float64 step_size, float64 bc2_sqrt, float64 eps",
            "T param, T m, T v",
            """
            T g = grad + (T)wd * param;
            m = (T)b1 * m + (T)(1.0 - b1) * g;
            v = (T)b2 * v + (T)(1.0 - b2) * g * g;
            param -= (T)step_size * m / (sqrt(v) / (T)bc2_sqrt + (T)eps);
            """,
            "minivae_adam_step")
    return _CUPY_KERNELS[cupy]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``.

    ``params``: a Module or an iterable of Parameters (all of one dtype, see
    :mod:`minivae.optim.optimizer`). State: ``t`` and the flat moments ``m``, ``v``.
    """

    _state_names = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ValueError(f"Adam betas must be a pair of floats, got {betas!r}") from None
        if not lr >= 0.0:
            raise ValueError(f"Adam learning rate must be >= 0, got {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Adam eps must be >= 0, got {eps}")
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam betas must lie in [0, 1), got {(b1, b2)}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Adam weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": (b1, b2), "eps": eps, "weight_decay": weight_decay})

    @property
    def m(self):
        """First-moment estimate (flat)."""
        return self._state["m"]

    @property
    def v(self):
        """Second-moment estimate (flat)."""
        return self._state["v"]

    def _update(self, p, g) -> None:
        group = self.param_groups[0]
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        m, v, xp, t = self._state["m"], self._state["v"], self._xp, self.t
        step_size = lr / (1.0 - b1 ** t)
        bc2_sqrt = math.sqrt(1.0 - b2 ** t)
        if xp.__name__ == "cupy":
            _cupy_adam_kernel(xp)(g, b1, b2, wd, step_size, bc2_sqrt, eps, p, m, v)
            return
        self._for_each_block(
            lambda block, tmp, d: _adam_block(xp, p[block], g[block], m[block], v[block], tmp, d,
                                              b1, b2, wd, step_size, bc2_sqrt, eps), 2)


def _adam_block(xp, p, g, m, v, tmp, d, b1, b2, wd, step_size, bc2_sqrt, eps) -> None:
    """The Adam update on one block, in place, with ufuncs writing into ``tmp``/``d``."""
    if wd != 0.0:
        xp.multiply(p, wd, out=d)
        d += g                          # g + λθ, without touching the user's .grad
        g = d
    m *= b1
    xp.multiply(g, 1.0 - b1, out=tmp)
    m += tmp                            # m = β₁m + (1−β₁)g
    v *= b2
    xp.multiply(g, g, out=tmp)
    tmp *= 1.0 - b2
    v += tmp                            # v = β₂v + (1−β₂)g²
    xp.sqrt(v, out=tmp)
    tmp /= bc2_sqrt
    tmp += eps                          # denominator √v/√(1−β₂ᵗ) + ε
    xp.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp
