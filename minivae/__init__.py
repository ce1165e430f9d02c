"""minivae: an auditable reference implementation of variational autoencoders
on NumPy (CPU) and CuPy (CUDA), with a hand-written reverse-mode autograd.

``import minivae`` loads the core (backend, Tensor, ops); the rest loads on first use:
``minivae.nn``, ``.optim``, ``.vae``, ``.data``, ``.run``, ``.train`` and
``minivae.load_run(DIR)`` (a trained run folder: config, model, objective and its state).
"""
import importlib

from . import backend
from .autograd import Tensor, no_grad
from . import ops

__version__ = "0.1.0"
_LAZY = ("nn", "optim", "vae", "data", "run", "train", "twostage", "fixedpoint", "checkpoint", "gradcheck",
         "classifier", "settings")
__all__ = ["Tensor", "backend", "load_run", "no_grad", "ops", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "load_run":
        from .run import load_run  # noqa: PLC0415
        return load_run
    raise AttributeError(f"module 'minivae' has no attribute {name!r}")
