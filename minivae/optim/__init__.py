"""Optimisers on one flat parameter buffer: :class:`Adam`, :class:`SGD`, :func:`clip_grad_norm_`.

See :mod:`minivae.optim.optimizer` for the flat-buffer design and its rules
(one dtype per optimiser, parameters without a gradient hold zeros).
"""
from .adam import Adam
from .clip import clip_grad_norm_
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Adam", "Optimizer", "SGD", "clip_grad_norm_"]
