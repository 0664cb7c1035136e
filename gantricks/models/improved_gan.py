"""The Improved-GAN authors' CIFAR-10/SVHN networks (Salimans et al. 2016; openai/improved-gan,
``mnist_svhn_cifar10/train_cifar_minibatch_discrimination.py``), for any channel count.

D: Gaussian noise σ 0.2 on the input → weight-normalised 3×3 convolutions 96, 96, 96
(stride 2) → dropout 0.5 → 192, 192, 192 (stride 2) → dropout 0.5 → 192 (3×3, valid) →
NIN 192 → NIN 192 → global mean pool: 192 features → weight-normalised dense head. LeakyReLU
0.2 throughout, no batch norm. G: dense to base²·512 + batch norm → 5×5 transposed
convolutions 256, 128 (×2 each, batch norm, ReLU) → a weight-normalised one to the image
channels + tanh. Batch norm has a learned shift and no learned scale; plain weights are
drawn from N(0, 0.05); every weight-normalised layer is initialised from data (the
trainer's initialisation pass, 500 real images by default), the output layers to a
standard deviation of 0.1.

At 32×32 (the paper's) G starts from 4×4 and upsamples three times; at 28×28 (MNIST,
glyphs) it starts from 7×7 and upsamples twice (256 → 128 → image), and D is unchanged (it is
fully convolutional up to the pool). Other sizes: 4·2ⁿ or 7·2ⁿ, with one 2×-block per
doubling, the widths doubling backwards from 128.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from gantricks.config import base_for
from gantricks.models.discriminator import GanDiscriminator
from gantricks.models.layers import (
    GaussianNoise,
    ShiftOnlyBatchNorm,
    WNConv2d,
    WNConvTranspose2d,
    WNLinear,
)

LEAK = 0.2
INIT_STD = 0.05  # the authors' Normal(0.05)


class Generator(nn.Module):
    """z (N, nz) -> images (N, channels, size, size) in [-1, 1]."""

    def __init__(self, nz: int, channels: int, image_size: int) -> None:
        super().__init__()
        base, n = base_for(image_size)
        self.nz, self.channels, self.image_size = nz, channels, image_size
        widths = [128 * 2 ** (n - 1 - k) for k in range(n)]  # 32 px: 512, 256, 128
        self.base, self.first = base, widths[0]
        dense = nn.Linear(nz, base * base * widths[0], bias=False)
        nn.init.normal_(dense.weight, 0.0, INIT_STD)
        self.dense = nn.Sequential(dense, ShiftOnlyBatchNorm(base * base * widths[0]), nn.ReLU())
        layers: list[nn.Module] = []
        for w_in, w_out in pairwise(widths):
            deconv = nn.ConvTranspose2d(w_in, w_out, 5, 2, 2, output_padding=1, bias=False)
            nn.init.normal_(deconv.weight, 0.0, INIT_STD)
            layers += [deconv, ShiftOnlyBatchNorm(w_out, dims=2), nn.ReLU()]
        layers += [WNConvTranspose2d(widths[-1], channels, 5, INIT_STD, init_scale=0.1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z.flatten(1)).view(-1, self.first, self.base, self.base)
        return self.net(h)


def _conv(c_in: int, c_out: int, stride: int = 1, padding: int = 1, k: int = 3) -> list[nn.Module]:
    return [WNConv2d(c_in, c_out, k, stride, padding, INIT_STD), nn.LeakyReLU(LEAK)]


class GlobalMeanPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def head(n_in: int, n_out: int) -> WNLinear:
    """The authors' dense output layer: weight-normalised, trained scale, initialised from
    data to a standard deviation of 0.1."""
    return WNLinear(n_in, n_out, train_scale=True, init_std=INIT_STD, init_scale=0.1)


class Discriminator(GanDiscriminator):
    """images -> (logit (N, 1), the 192 pooled features)."""

    def __init__(self, channels: int) -> None:
        layers: list[nn.Module] = [GaussianNoise(0.2)]
        layers += [*_conv(channels, 96), *_conv(96, 96), *_conv(96, 96, stride=2)]
        ends = [layers[-1]]
        layers += [nn.Dropout(0.5), *_conv(96, 192), *_conv(192, 192), *_conv(192, 192, 2)]
        ends.append(layers[-1])
        layers += [nn.Dropout(0.5), *_conv(192, 192, padding=0)]
        layers += [*_conv(192, 192, padding=0, k=1), *_conv(192, 192, padding=0, k=1)]
        ends.append(layers[-1])
        layers.append(GlobalMeanPool())
        super().__init__(nn.Sequential(*layers), 192, head, ends)


def build(
    nz: int, channels: int, image_size: int, ngf: int, ndf: int
) -> tuple[nn.Module, GanDiscriminator]:
    """The pair (``ngf``/``ndf`` do not apply: the widths are the authors')."""
    return Generator(nz, channels, image_size), Discriminator(channels)
