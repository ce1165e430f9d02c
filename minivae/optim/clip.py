"""Gradient-norm clipping, as ``torch.nn.utils.clip_grad_norm_`` (L2 norm over all gradients)."""
from __future__ import annotations

import math

from .. import backend
from ..autograd import Tensor
from .optimizer import Optimizer


def clip_grad_norm_(optimizer_or_params, max_norm: float) -> float:
    """Scale the gradients in place so their joint L2 norm is at most ``max_norm``.

    Given an :class:`Optimizer` this is two operations on its flat gradient
    buffer (one dot product, one in-place scale); given parameters it loops
    over their ``.grad`` arrays (``None`` gradients are skipped). As in PyTorch
    the scale is ``min(1, max_norm / (norm + 1e-6))``. Returns the norm *before*
    clipping as a Python float (one device sync on CuPy); a non-finite norm is
    returned as is so the caller's NaN guard can name it.
    """
    max_norm = float(max_norm)
    if not max_norm > 0.0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    if isinstance(optimizer_or_params, Optimizer):
        grads = [optimizer_or_params.flat_grads]
    else:
        params = optimizer_or_params
        if isinstance(params, Tensor):
            params = [params]
        elif hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return 0.0
    xp = backend.get_array_module(*grads)
    total = sum(float(xp.vdot(g.reshape(-1), g.reshape(-1))) for g in grads)
    norm = math.sqrt(total)
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:  # also False for a NaN norm: gradients are left as they are
        for g in grads:
            g *= scale
    return norm
