"""Variational autoencoders: distributions, models, objectives, diagnostics."""
from .distributions import (bernoulli_nll_from_logits, gaussian_nll, kl_diag_gaussian, reparameterize,
                            squared_error)
from .models import PRESETS, VAE, ConvVAE, DenseVAE, VAEOutput, build_model
from .objectives import OBJECTIVES, Balanced, ELBO, LearnedGamma, Objective, build_objective

__all__ = ["PRESETS", "OBJECTIVES", "VAE", "ConvVAE", "DenseVAE", "VAEOutput", "Balanced", "ELBO",
           "LearnedGamma", "Objective", "bernoulli_nll_from_logits", "build_model", "build_objective",
           "gaussian_nll", "kl_diag_gaussian", "reparameterize", "squared_error"]
