"""DCGAN generator and discriminator following Radford et al. (2015), section 3.

Strided (transposed) convolutions and no pooling; no fully connected hidden layers; batch
norm everywhere except the generator's output and the discriminator's input; ReLU and a
tanh output in G; LeakyReLU(0.2) in D; weights drawn from N(0, 0.02).

The discriminator is a trunk (``features``: image -> flat feature vector) and a ``head``
(feature vector -> one logit), and returns both, so plugins can read features (feature
matching) or replace the head (minibatch discrimination) without touching the core. The
head is a linear layer on the flattened last feature map, which is exactly DCGAN's final
full-size convolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import torch
from torch import nn

from gantricks.config import base_for


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


class Discriminator(nn.Module):
    """image -> (logits (batch, 1), features (batch, feature_dim))."""

    def __init__(self, channels: int, image_size: int, ndf: int = 64) -> None:
        super().__init__()
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
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1] * base * base
        self.head: nn.Module = nn.Linear(self.feature_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.head(h), h


def conv_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """The activation ending each convolutional block of a DCGAN discriminator's trunk
    (``discriminator.features``), first block first; empty for other discriminators."""
    trunk = getattr(discriminator, "features", None)
    if trunk is None:
        return []
    return [m for m in trunk.modules() if isinstance(m, nn.LeakyReLU)]


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


@dataclass
class Models:
    """The two players, and modules plugins keep beside them.

    Plugins may replace either player, or modules inside them (``gantricks_build_models``).
    ``extra`` holds modules no optimiser trains (an exponential moving average of G, say):
    they are saved in checkpoints, moved to the device and rebuilt for sampling like the
    players.
    """

    generator: nn.Module
    discriminator: nn.Module
    nz: int
    extra: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    #: The generator a plugin chose for sampling (``gantricks_sampling_generator``), if any.
    for_sampling: nn.Module | None = None

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator samples are drawn from: ``for_sampling``, else ``generator``."""
        return self.for_sampling if self.for_sampling is not None else self.generator

    def to(self, device: torch.device) -> Models:
        self.generator.to(device)
        self.discriminator.to(device)
        self.extra.to(device)
        return self


def build_models(nz: int, channels: int, image_size: int, ngf: int, ndf: int) -> Models:
    """DCGAN pair, initialised from the current torch RNG state."""
    g = Generator(nz, channels, image_size, ngf)
    d = Discriminator(channels, image_size, ndf)
    init_weights(g)
    init_weights(d)
    return Models(generator=g, discriminator=d, nz=nz)
