"""minivae: an auditable reference implementation of variational autoencoders
on NumPy (CPU) and CuPy (CUDA), with a hand-written reverse-mode autograd."""
from . import backend
from .autograd import Tensor, no_grad
from . import ops

__version__ = "0.1.0"
__all__ = ["Tensor", "backend", "no_grad", "ops", "__version__"]
