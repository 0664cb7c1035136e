"""The Improved-GAN authors' MNIST networks (Salimans et al. 2016, section 5; openai/improved-gan,
``mnist_svhn_cifar10/train_mnist_feature_matching.py``), for any image size and channels.

D: the image mapped to [0, 1] and flattened, Gaussian noise σ 0.3, then weight-normalised
ReLU layers of 1000-500-250-250-250 units, each with noise σ 0.5 on its input, data-
dependently initialised (their scale then fixed); the last 250 units are the features
(what feature matching matches); the head is noise σ 0.5 and a weight-normalised dense
layer with a trained scale. G: z → 500 → 500 (softplus, batch norm with a learned shift)
→ a weight-normalised sigmoid layer (its scale trained from 1, not initialised from data),
mapped to [−1, 1].
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from gantricks.models.discriminator import GanDiscriminator
from gantricks.models.layers import GaussianNoise, ShiftOnlyBatchNorm, WNLinear

FEATURES = 250


class ToUnitRange(nn.Module):
    """Images in [−1, 1] → flat vectors in [0, 1], the scale the paper's noise σ refers to."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).add(1.0).mul(0.5)


def mlp_trunk(n_in: int) -> nn.Sequential:
    """D up to its last hidden layer (the matched features)."""
    layers: list[nn.Module] = [ToUnitRange(), GaussianNoise(0.3)]
    widths = [n_in, 1000, 500, 250, 250, FEATURES]
    for i, (a, b) in enumerate(pairwise(widths)):
        if i > 0:
            layers.append(GaussianNoise(0.5))
        layers += [WNLinear(a, b, train_scale=False), nn.ReLU()]
    return nn.Sequential(*layers)


def head(n_in: int, n_out: int) -> nn.Sequential:
    """Noise σ 0.5, then a weight-normalised dense layer with a trained scale."""
    return nn.Sequential(GaussianNoise(0.5), WNLinear(n_in, n_out, train_scale=True))


class Generator(nn.Module):
    """z (N, nz) -> images (N, channels, size, size) in [-1, 1]."""

    def __init__(self, nz: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.nz, self.channels, self.image_size = nz, channels, image_size
        n_out = channels * image_size * image_size
        self.net = nn.Sequential(
            nn.Linear(nz, 500, bias=False),
            ShiftOnlyBatchNorm(500),
            nn.Softplus(),
            nn.Linear(500, 500, bias=False),
            ShiftOnlyBatchNorm(500),
            nn.Softplus(),
            # The authors' l2normalize layer: no data-dependent initialisation.
            WNLinear(500, n_out, init_std=(2 / (500 + n_out)) ** 0.5, data_init=False),
        )
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)  # Lasagne's default, as the authors' code

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.sigmoid(self.net(z.flatten(1))) * 2 - 1
        return x.view(-1, self.channels, self.image_size, self.image_size)


class Discriminator(GanDiscriminator):
    """images -> (logit (N, 1), the last 250 hidden units)."""

    def __init__(self, n_in: int) -> None:
        trunk = mlp_trunk(n_in)
        ends = [m for m in trunk if isinstance(m, nn.ReLU)]
        super().__init__(trunk, FEATURES, head, ends)


def build(
    nz: int, channels: int, image_size: int, ngf: int, ndf: int
) -> tuple[nn.Module, GanDiscriminator]:
    """The pair (``ngf``/``ndf`` do not apply: the widths are the authors')."""
    return Generator(nz, channels, image_size), Discriminator(channels * image_size**2)
