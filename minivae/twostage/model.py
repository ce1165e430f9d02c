"""The second-stage VAE of Dai & Wipf (ICLR 2019, "Diagnosing and enhancing VAE models", §4):
a dense VAE whose *data* are the latent codes z ∈ R^k of a trained first stage (math.md §4).

    encoder:  h = ReLU(W₃ ReLU(W₂ ReLU(W₁ z)))      (depth 3, width 1024 by default)
              [μ_u, logvar_u] = heads( concat(z, h) )
    decoder:  h = ReLU(W₃' ReLU(W₂' ReLU(W₁' u)))
              ẑ = head( concat(u, h) )                (linear output: codes are unbounded)

The input is concatenated to the last hidden layer before the heads, as in the
authors' code, so the identity map is easy to represent. The latent size of
stage 2 equals k. The model speaks the :class:`~minivae.vae.models.VAEOutput`
interface, so every :class:`~minivae.vae.objectives.Objective` (learned γ_z,
balanced γ_z) trains it unchanged.
"""
from __future__ import annotations

from .. import nn, ops
from ..vae.distributions import reparameterize
from ..vae.models import VAEOutput

DEFAULT_WIDTH = 1024
DEFAULT_DEPTH = 3


def _hidden(n_in, widths, activation):
    layers, prev = [], n_in
    for w in widths:
        layers += [nn.Linear(prev, w), nn.activation(activation)]
        prev = w
    return nn.Sequential(*layers)


class SecondStageVAE(nn.Module):
    """Dense VAE over vectors of size ``latent_dim`` (its own latent size is the same).

    ``hidden``: the widths of the ReLU layers (default three of 1024), used by both
    the encoder and the decoder.
    """

    def __init__(self, latent_dim: int, hidden=(DEFAULT_WIDTH,) * DEFAULT_DEPTH, activation: str = "relu"):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if int(latent_dim) < 1:
            raise ValueError(f"the second stage needs a positive latent size, got {latent_dim}")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"the second stage needs at least one hidden layer of positive width, got {hidden}")
        k = int(latent_dim)
        self.latent_dim, self.hidden, self.output = k, hidden, "linear"
        self.input_shape = (k,)
        self.encoder = _hidden(k, hidden, activation)
        self.mu_head = nn.Linear(k + hidden[-1], k)
        self.logvar_head = nn.Linear(k + hidden[-1], k)
        self.decoder = _hidden(k, hidden, activation)
        self.out_head = nn.Linear(k + hidden[-1], k)

    def _check_input(self, z, what):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"the second stage takes {what} of shape (batch, {self.latent_dim}), "
                             f"got {tuple(z.shape)}")

    def encode(self, z):
        """(μ_u, logvar_u) of q(u|z), each (B, k)."""
        self._check_input(z, "latent codes")
        h = ops.concatenate([z, self.encoder(z)], axis=1)
        return self.mu_head(h), self.logvar_head(h)

    def decode_logits(self, u):
        self._check_input(u, "second-stage latents")
        return self.out_head(ops.concatenate([u, self.decoder(u)], axis=1))

    def mean(self, logits):
        return logits

    def decode(self, u):
        """ẑ = decoder₂(u)."""
        return self.decode_logits(u)

    def forward(self, z, eps=None) -> VAEOutput:
        mu, logvar = self.encode(z)
        u = reparameterize(mu, logvar, eps)
        z_hat = self.decode_logits(u)
        return VAEOutput(mu, logvar, u, z_hat, z_hat, "linear")

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, hidden={self.hidden}"
