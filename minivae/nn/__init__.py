"""Neural-network layers with PyTorch's names and layouts (weights exchange one-to-one)."""
from .activation import ELU, Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh, activation
from .container import Flatten, Reshape, Sequential
from .linear import Linear
from .module import Module, Parameter

__all__ = ["ELU", "Flatten", "Identity", "LeakyReLU", "Linear", "Module", "Parameter", "ReLU",
           "Reshape", "Sequential", "Sigmoid", "Softplus", "Tanh", "activation"]
