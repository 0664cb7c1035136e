"""DCGAN architecture per Radford et al. (2015)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gantricks.models import build_models


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3), (64, 1), (16, 2)])
def test_shapes(size, channels):
    torch.manual_seed(0)
    m = build_models(nz=10, channels=channels, image_size=size, ngf=8, ndf=8)
    z = torch.randn(5, 10)
    x = m.generator(z)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    logits, feats = m.discriminator(x)
    assert logits.shape == (5, 1)
    assert feats.shape == (5, m.discriminator.feature_dim)


def test_paper_guidelines():
    torch.manual_seed(0)
    m = build_models(nz=100, channels=3, image_size=64, ngf=64, ndf=64)
    g, d = m.generator, m.discriminator
    # No pooling, no hidden fully connected layers.
    for mod in [*g.modules(), *d.modules()]:
        assert not isinstance(mod, nn.MaxPool2d | nn.AvgPool2d)
    assert [type(x) for x in d.modules() if isinstance(x, nn.Linear)] == [nn.Linear]  # head only
    # BN everywhere except G's output and D's input.
    g_layers = list(g.net)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    d_layers = list(d.features)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2
    assert sum(isinstance(x, nn.BatchNorm2d) for x in g.modules()) == 4
    assert sum(isinstance(x, nn.BatchNorm2d) for x in d.modules()) == 3
    assert sum(isinstance(x, nn.ReLU) for x in g.modules()) == 4
    # The pytorch/examples 64x64 widths: 512-256-128-64 in G, 64-128-256-512 in D.
    convs = [x for x in g.modules() if isinstance(x, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
    assert d.feature_dim == 512 * 4 * 4
    # N(0, 0.02) initialisation.
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    # Batch norm: scale N(1, 0.02), shift 0 (dcgan.torch's weights_init).
    bns = [x for m in (g, d) for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    scale = torch.cat([b.weight.detach() for b in bns])
    assert scale.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert scale.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(not b.bias.detach().any() for b in bns)
