"""VAE models: a dense VAE, a convolutional VAE, and the named presets.

Encoders output μ and **log σ²** through two linear heads; the decoder's last layer
gives pre-activation values (``logits``) and the decoder mean is x̂ = sigmoid(logits)
(images in [0,1]) or the identity (``output="linear"``). The Bernoulli likelihood
uses the logits directly (stable form, math.md §1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import nn, ops
from ..autograd import Tensor
from ..nn.batchnorm import BatchNorm1d, BatchNorm2d
from ..nn.conv import Conv2d, ConvTranspose2d
from .distributions import reparameterize

OUTPUTS = ("sigmoid", "linear")


@dataclass
class VAEOutput:
    """What one forward pass produces (kept for the objective and the diagnostics)."""
    mu: Tensor
    logvar: Tensor
    z: Tensor
    logits: Tensor   # decoder pre-activation, shape of x
    x_hat: Tensor    # decoder mean, shape of x
    output: str = "sigmoid"


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(μ(x), diag exp(logvar(x))) and a decoder g(z).

    ``encoder`` maps x to features of size ``feature_dim``; ``decoder`` maps z to
    a tensor with x's shape (pre-activation).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, feature_dim: int, latent_dim: int,
                 input_shape, output: str = "sigmoid"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown decoder output {output!r}; choose one of: {', '.join(OUTPUTS)}")
        self.encoder, self.decoder = encoder, decoder
        self.mu_head = nn.Linear(feature_dim, latent_dim)
        self.logvar_head = nn.Linear(feature_dim, latent_dim)
        self.latent_dim, self.input_shape, self.output = int(latent_dim), tuple(input_shape), output

    def _check_input(self, x):
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{type(self).__name__} takes images of shape {self.input_shape} "
                             f"(channels, height, width), got a batch of shape {tuple(x.shape)}")

    def encode(self, x):
        """(μ, logvar), each of shape (B, k)."""
        self._check_input(x)
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h)

    def decode_logits(self, z):
        return ops.reshape(self.decoder(z), (z.shape[0],) + self.input_shape)

    def mean(self, logits):
        return ops.sigmoid(logits) if self.output == "sigmoid" else logits

    def decode(self, z):
        """Decoder mean x̂ = g(z)."""
        return self.mean(self.decode_logits(z))

    def forward(self, x, eps=None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)
        logits = self.decode_logits(z)
        return VAEOutput(mu, logvar, z, logits, self.mean(logits), self.output)


def _mlp(widths, activation, final_activation=True):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(widths) - 2:
            layers.append(nn.activation(activation))
    return layers


class DenseVAE(VAE):
    """Fully connected VAE: D → hidden… → (μ, logvar) ∈ R^k, mirrored decoder k → …hidden → D.

    ``mnist-dense`` is Asperti's 784-256-64-32-16 network (hidden = (256, 64, 32)).
    """

    def __init__(self, input_shape, hidden=(256, 64, 32), latent_dim=16, activation="relu",
                 output="sigmoid"):
        input_shape = tuple(input_shape)
        D = int(math.prod(input_shape))
        hidden = tuple(int(h) for h in hidden)
        if not hidden:
            raise ValueError("DenseVAE needs at least one hidden layer width")
        encoder = nn.Sequential(nn.Flatten(), *_mlp((D,) + hidden, activation))
        decoder = nn.Sequential(*_mlp((latent_dim,) + hidden[::-1], activation),
                                *_mlp((hidden[0], D), activation, final_activation=False))
        super().__init__(encoder, decoder, hidden[-1], latent_dim, input_shape, output)
        self.hidden = hidden


class ConvVAE(VAE):
    """Convolutional VAE: strided 4×4 convolutions (stride 2) halve the image per layer,
    a dense layer to the heads; the decoder mirrors it with transposed convolutions
    (in the spirit of Dai & Wipf's and Asperti's networks). Optional BatchNorm after
    each hidden convolution."""

    def __init__(self, input_shape, channels=(32, 64), latent_dim=16, dense=256, batchnorm=False,
                 activation="relu", output="sigmoid"):
        input_shape = tuple(input_shape)
        c, h, w = input_shape
        n = len(channels)
        if h % (2 ** n) or w % (2 ** n):
            raise ValueError(f"ConvVAE with {n} stride-2 layers needs height and width divisible by "
                             f"{2 ** n}; got {h}×{w} (choose another preset or image size)")
        hs, ws = h // 2 ** n, w // 2 ** n
        enc, prev = [], c
        for ch in channels:
            enc += [Conv2d(prev, ch, 4, stride=2, padding=1)]
            enc += [BatchNorm2d(ch)] if batchnorm else []
            enc += [nn.activation(activation)]
            prev = ch
        flat = prev * hs * ws
        enc += [nn.Flatten(), nn.Linear(flat, dense)]
        enc += [BatchNorm1d(dense)] if batchnorm else []
        enc += [nn.activation(activation)]
        dec = [nn.Linear(latent_dim, dense), nn.activation(activation), nn.Linear(dense, flat),
               nn.activation(activation), nn.Reshape(prev, hs, ws)]
        rev = list(channels[::-1][1:]) + [c]
        for i, ch in enumerate(rev):
            dec += [ConvTranspose2d(prev, ch, 4, stride=2, padding=1)]
            if i < len(rev) - 1:
                dec += [BatchNorm2d(ch)] if batchnorm else []
                dec += [nn.activation(activation)]
            prev = ch
        super().__init__(nn.Sequential(*enc), nn.Sequential(*dec), dense, latent_dim, input_shape, output)
        self.channels = tuple(channels)


PRESETS = {
    # Asperti's seeds: 784-256-64-32-16 encoder and its mirror decoder
    "mnist-dense": dict(kind="dense", input_shape=(1, 28, 28), hidden=(256, 64, 32), latent_dim=16),
    "mnist-conv": dict(kind="conv", input_shape=(1, 28, 28), channels=(32, 64), dense=256, latent_dim=16),
    # 32×32×3, 64 latents, in the spirit of Dai & Wipf's CIFAR network (BatchNorm, three convs)
    "cifar-conv": dict(kind="conv", input_shape=(3, 32, 32), channels=(64, 128, 256), dense=512,
                       latent_dim=64, batchnorm=True),
    # small networks for the generated sprites data (default; fast on 2 cores)
    # (any_shape: they adapt to the data's image size)
    "sprites-dense": dict(kind="dense", input_shape=(1, 28, 28), hidden=(256, 64), latent_dim=10,
                          any_shape=True),
    "sprites-conv": dict(kind="conv", input_shape=(1, 28, 28), channels=(16, 32), dense=128, latent_dim=10,
                         any_shape=True),
}


def build_model(preset: str | None = None, *, input_shape=None, **overrides) -> VAE:
    """A model from a preset name, optionally overriding its keys (latent_dim, hidden, ...).

    Without a preset, ``kind`` ("dense" or "conv") and ``input_shape`` must be given.
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        spec = dict(PRESETS[preset])
    else:
        spec = {"kind": "dense"}
    spec.update({k: v for k, v in overrides.items() if v is not None})
    any_shape = spec.pop("any_shape", False)
    if input_shape is not None:
        if preset is not None and not any_shape and tuple(input_shape) != tuple(spec["input_shape"]):
            raise ValueError(f"preset {preset!r} takes images of shape {tuple(spec['input_shape'])} "
                             f"(channels, height, width) but the data has shape {tuple(input_shape)}; "
                             "choose a matching preset or pass --image-size / a dense model")
        spec["input_shape"] = tuple(input_shape)
    if "input_shape" not in spec:
        raise ValueError("build_model needs an input_shape when no preset is given")
    kind = spec.pop("kind")
    if kind == "dense":
        spec.pop("channels", None), spec.pop("dense", None), spec.pop("batchnorm", None)
        return DenseVAE(**spec)
    if kind == "conv":
        spec.pop("hidden", None)
        return ConvVAE(**spec)
    raise ValueError(f"unknown model kind {kind!r}; choose 'dense' or 'conv'")
