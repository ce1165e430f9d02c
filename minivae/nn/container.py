"""``Sequential``, ``Flatten`` and ``Reshape``."""
from __future__ import annotations

from .. import ops
from .module import Module


class Sequential(Module):
    """Applies its modules in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __len__(self): return len(self._modules)

    def __getitem__(self, i): return list(self._modules.values())[i]

    def __iter__(self): return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W)."""

    def forward(self, x): return ops.flatten(x, 1)


class Reshape(Module):
    """(N, ...) -> (N, *shape)."""

    def __init__(self, *shape: int):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x): return ops.reshape(x, (x.shape[0],) + self.shape)

    def extra_repr(self): return ", ".join(map(str, self.shape))
