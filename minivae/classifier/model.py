"""The image classifier of minivae: a small convolutional network (logits and features).

Two uses: the CLA constraint of GECO (Rezende & Viola 2018, Table 1; math.md §3),
which asks that a classifier recognise the reconstructions, and the feature map of
the Fréchet distance (math.md §6: "a classifier trained with this library on the
same data", the usual FID-MNIST practice -- not Inception, so those numbers are not
comparable with published FIDs).

Architecture (a choice, sized for 2 CPU cores): two 4×4 stride-2 convolutions
(32 and 64 channels, ReLU) halve the image twice (28 → 14 → 7, 32 → 16 → 8), then a
dense ReLU layer of 128 units -- the *features* -- and a linear layer to the logits.
"""
from __future__ import annotations

from .. import nn
from ..nn.conv import Conv2d

DEFAULT_CHANNELS, DEFAULT_HIDDEN = (32, 64), 128


def _conv_out(size: int) -> int:
    return (size + 2 * 1 - 4) // 2 + 1   # kernel 4, stride 2, padding 1


class Classifier(nn.Module):
    """``forward(x)`` -> logits (B, n_classes); ``features(x)`` -> (B, hidden) penultimate activations."""

    def __init__(self, input_shape=(1, 28, 28), n_classes: int = 10, channels=DEFAULT_CHANNELS,
                 hidden: int = DEFAULT_HIDDEN):
        super().__init__()
        input_shape = tuple(int(v) for v in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"Classifier: input_shape must be (channels, height, width), got {input_shape}")
        if int(n_classes) < 2:
            raise ValueError(f"Classifier: n_classes must be at least 2, got {n_classes}")
        channels = tuple(int(c) for c in channels)
        c, h, w = input_shape
        layers, prev = [], c
        for ch in channels:
            h, w = _conv_out(h), _conv_out(w)
            if h < 1 or w < 1:
                raise ValueError(f"Classifier: images of shape {input_shape} are too small for "
                                 f"{len(channels)} stride-2 convolutions")
            layers += [Conv2d(prev, ch, 4, stride=2, padding=1), nn.ReLU()]
            prev = ch
        layers += [nn.Flatten(), nn.Linear(prev * h * w, int(hidden)), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(int(hidden), int(n_classes))
        self.input_shape, self.n_classes = input_shape, int(n_classes)
        self.channels, self.hidden = channels, int(hidden)

    def _check_input(self, x):
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"Classifier takes images of shape {self.input_shape} (channels, height, width), "
                             f"got a batch of shape {tuple(x.shape)}")

    def features(self, x):
        """Penultimate activations (B, hidden): the Fréchet-distance features."""
        self._check_input(x)
        return self.body(x)

    def forward(self, x):
        """Class logits (B, n_classes)."""
        return self.head(self.features(x))

    def config(self) -> dict:
        return {"input_shape": list(self.input_shape), "n_classes": self.n_classes,
                "channels": list(self.channels), "hidden": self.hidden}

    def extra_repr(self):
        return f"input_shape={self.input_shape}, n_classes={self.n_classes}"
