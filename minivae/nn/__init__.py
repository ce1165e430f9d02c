"""Neural-network layers with PyTorch's names and layouts (weights exchange one-to-one)."""
from .activation import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh, activation
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Flatten, Reshape, Sequential
from .conv import Conv2d, ConvTranspose2d
from .evaluation import batched_map, evaluating
from .linear import Linear
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "ELU", "Flatten", "Identity", "LeakyReLU", "Linear", "Module", "Parameter", "ReLU",
           "Reshape", "Sequential", "Sigmoid", "Softplus", "Tanh", "activation", "batched_map", "evaluating"]
