"""Variational autoencoders: distributions, models, objectives, diagnostics."""
from .distributions import (bernoulli_nll_from_logits, gaussian_nll, kl_diag_gaussian, reparameterize,
                            squared_error)
from .models import PRESETS, VAE, ConvVAE, DenseVAE, VAEOutput, build_model
from .objective import Objective, build_objective, objective_class, objective_names
from .objectives import OBJECTIVES, Balanced, ELBO, LearnedGamma
from .geco import GECO  # registers "geco"

__all__ = ["PRESETS", "OBJECTIVES", "VAE", "ConvVAE", "DenseVAE", "VAEOutput", "Balanced", "ELBO", "GECO",
           "LearnedGamma", "Objective", "bernoulli_nll_from_logits", "build_model", "build_objective",
           "gaussian_nll", "kl_diag_gaussian", "objective_class", "objective_names", "reparameterize",
           "squared_error"]
