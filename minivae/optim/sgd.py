"""Stochastic gradient descent with momentum, as ``torch.optim.SGD`` (dampening 0).

    d   ← g_t + λ θ_{t-1}                 (L2 weight decay, if λ > 0)
    b_t = d                 at t = 1,     b_t = μ b_{t-1} + d   after   (if μ > 0)
    d   ← d + μ b_t  (Nesterov)           or   d ← b_t   (classical momentum)
    θ_t = θ_{t-1} − lr · d

(Sutskever et al. 2013 for the Nesterov form PyTorch uses.)
"""
from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False)``.

    State: ``t`` and, when ``momentum > 0``, the flat ``momentum_buffer``.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        lr, momentum, weight_decay = float(lr), float(momentum), float(weight_decay)
        if not lr >= 0.0:
            raise ValueError(f"SGD learning rate must be >= 0, got {lr}")
        if not momentum >= 0.0:
            raise ValueError(f"SGD momentum must be >= 0, got {momentum}")
        if not weight_decay >= 0.0:
            raise ValueError(f"SGD weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum <= 0.0:
            raise ValueError("SGD nesterov=True needs momentum > 0")
        # the state buffers depend on the instance: a momentum buffer only if momentum > 0
        self._state_names = ("momentum_buffer",) if momentum > 0.0 else ()
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": bool(nesterov)})

    @property
    def momentum_buffer(self):
        """The flat momentum buffer (``None`` without momentum)."""
        return self._state.get("momentum_buffer")

    def _update(self, p, g) -> None:
        group = self.param_groups[0]
        lr, mu, wd, nesterov = group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]
        buf = self._state.get("momentum_buffer")
        first = self.t == 1
        xp = self._xp
        self._for_each_block(
            lambda block, tmp, d: _sgd_block(xp, p[block], g[block], None if buf is None else buf[block],
                                             tmp, d, lr, mu, wd, nesterov, first), 2)


def _sgd_block(xp, p, g, buf, tmp, d, lr, mu, wd, nesterov, first) -> None:
    """The SGD update on one block, in place, with ufuncs writing into ``tmp``/``d``."""
    if wd != 0.0:
        xp.multiply(p, wd, out=d)
        d += g                          # g + λθ, without touching the user's .grad
        g = d
    direction = g
    if buf is not None:
        if first:
            buf[...] = g                # PyTorch starts the buffer at the first gradient
        else:
            buf *= mu
            buf += g
        if nesterov:
            xp.multiply(buf, mu, out=tmp)
            tmp += g                    # g + μb
            direction = tmp
        else:
            direction = buf
    xp.multiply(direction, lr, out=tmp)
    p -= tmp
