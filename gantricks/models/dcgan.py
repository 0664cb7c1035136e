"""DCGAN generator and discriminator following Radford et al. (2015), section 3.

Strided (transposed) convolutions and no pooling; no fully connected hidden layers; batch
norm everywhere except the generator's output and the discriminator's input; ReLU and a
tanh output in G; LeakyReLU(0.2) in D; weights drawn from N(0, 0.02).

The discriminator is a :class:`GanDiscriminator`: a trunk (``features``: image -> flat
feature vector), feature transforms plugins add, and a ``head`` (-> one logit, or K class
logits), so plugins read features (feature matching) or extend the head (minibatch
discrimination, labels) without touching the core.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from gantricks.config import base_for
from gantricks.models.discriminator import GanDiscriminator


class Generator(nn.Module):
    """z (batch, nz) -> image (batch, channels, size, size) in [-1, 1]."""

    def __init__(self, nz: int, channels: int, image_size: int, ngf: int = 64) -> None:
        super().__init__()
        base, n = base_for(image_size)
        self.nz, self.channels, self.image_size = nz, channels, image_size
        widths = [ngf * 2 ** (n - 1 - k) for k in range(n)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(GanDiscriminator):
    """image -> (logits (batch, 1), features (batch, feature_dim)): strided convolutions,
    batch norm after all but the first, LeakyReLU(0.2); the head is a linear layer on the
    flattened last map (exactly DCGAN's final full-size convolution)."""

    def __init__(self, channels: int, image_size: int, ndf: int = 64) -> None:
        base, n = base_for(image_size)
        widths = [ndf * 2**k for k in range(n)]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Flatten())
        feature_dim = widths[-1] * base * base
        blocks = [m for m in layers if isinstance(m, nn.LeakyReLU)]
        # The first head keeps torch's default initialisation here: init_weights draws
        # N(0, 0.02) for it with every other layer; heads made later draw it themselves.
        super().__init__(
            nn.Sequential(*layers), feature_dim, linear_head, blocks, nn.Linear(feature_dim, 1)
        )


def linear_head(n_in: int, n_out: int) -> nn.Linear:
    """A DCGAN head: linear, weights N(0, 0.02), zero bias."""
    head = nn.Linear(n_in, n_out)
    nn.init.normal_(head.weight, 0.0, 0.02)
    nn.init.zeros_(head.bias)
    return head


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, BN scale N(1, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(nz: int, channels: int, image_size: int, ngf: int, ndf: int):
    """The DCGAN pair, initialised from the current torch RNG state."""
    g = Generator(nz, channels, image_size, ngf)
    d = Discriminator(channels, image_size, ndf)
    init_weights(g)
    init_weights(d)
    return g, d
