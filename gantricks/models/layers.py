"""Layers of the Improved-GAN authors' networks: weight normalisation with data-dependent
initialisation (Salimans & Kingma 2016), Gaussian noise, batch norm without a learned
scale.

**Data-dependent initialisation.** A module takes part when it has an ``initialising``
attribute (and ``data_init`` is not false): the trainer sets ``initialising = True`` on
every such module and runs one forward pass on real images (D) or generated ones (G), as
the authors' ``init=True`` pass does. A weight-normalised layer then sets its scale and
bias so that this batch's pre-activations have zero mean and a standard deviation of
``init_scale``, per output unit, and passes the normalised values on, so the next layer is
initialised from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def participants(module: nn.Module) -> list[nn.Module]:
    """The modules inside ``module`` that take part in data-dependent initialisation."""
    return [
        m for m in module.modules() if hasattr(m, "initialising") and getattr(m, "data_init", True)
    ]


@contextmanager
def initialising(module: nn.Module) -> Iterator[bool]:
    """Inside: the next forward pass of ``module`` initialises its participants; yields
    whether there are any."""
    found = participants(module)
    for m in found:
        m.initialising = True
    try:
        yield bool(found)
    finally:
        for m in found:
            m.initialising = False


class _WeightNorm(nn.Module):
    """w = g · v / ‖v‖ per output unit, bias b; ``g`` trained or (``train_scale=False``)
    fixed after the data-dependent initialisation."""

    #: dims of v summed over for one output unit's norm, and where that unit's axis is
    norm_dim = 0

    def _setup(self, v: torch.Tensor, n_out: int, train_scale: bool, init_scale: float) -> None:
        self.v = nn.Parameter(v)
        if train_scale:
            self.g = nn.Parameter(torch.ones(n_out))
        else:
            self.register_buffer("g", torch.ones(n_out))
        self.b = nn.Parameter(torch.zeros(n_out))
        self.init_scale = init_scale
        self.initialising = False

    def weight(self) -> torch.Tensor:
        # g·v/‖v‖ per unit in one fused kernel (what torch's weight_norm parametrisation uses)
        shape = [1] * self.v.dim()
        shape[self.norm_dim] = -1
        return torch._weight_norm(self.v, self.g.view(shape), self.norm_dim)

    def _direction(self) -> torch.Tensor:
        dims = [d for d in range(self.v.dim()) if d != self.norm_dim]
        if len(dims) == 1:
            return self.v / self.v.norm(dim=dims[0], keepdim=True)
        return self.v / torch.linalg.vector_norm(self.v, dim=dims, keepdim=True)

    @torch.no_grad()
    def _initialise(self, t: torch.Tensor, dims: tuple[int, ...]) -> None:
        """``t``: this batch's pre-activations with unit-norm weights and no bias."""
        mean, std = t.mean(dims), t.std(dims, unbiased=False) + 1e-8
        self.g.copy_(self.init_scale / std)
        self.b.copy_(-mean / std * self.init_scale)
        self.initialising = False


class WNLinear(_WeightNorm):
    """Weight-normalised linear layer. ``v``'s initial std sets how far an Adam step turns
    the direction v/‖v‖: N(0, 0.1²) in the authors' MNIST D, 0.05 in their CIFAR nets."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        train_scale: bool = True,
        init_std: float = 0.1,
        init_scale: float = 1.0,
        data_init: bool = True,
    ) -> None:
        super().__init__()
        self._setup(torch.randn(n_out, n_in) * init_std, n_out, train_scale, init_scale)
        self.data_init = data_init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.initialising:
            self._initialise(F.linear(x, self._direction()), (0,))
        return F.linear(x, self.weight(), self.b)


class WNConv2d(_WeightNorm):
    """Weight-normalised 2-D convolution (a 1×1 one is the authors' NIN layer)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        init_std: float = 0.05,
        train_scale: bool = False,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        v = torch.randn(c_out, c_in, kernel, kernel) * init_std
        self._setup(v, c_out, train_scale, init_scale)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.initialising:
            t = F.conv2d(x, self._direction(), None, self.stride, self.padding)
            self._initialise(t, (0, 2, 3))
        return F.conv2d(x, self.weight(), self.b, self.stride, self.padding)


class WNConvTranspose2d(_WeightNorm):
    """Weight-normalised transposed convolution, ×2 upsampling ("same" padding for an odd
    kernel, as the authors' Deconv2DLayer); the norm is per output channel."""

    norm_dim = 1

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 5,
        init_std: float = 0.05,
        train_scale: bool = True,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        v = torch.randn(c_in, c_out, kernel, kernel) * init_std
        self._setup(v, c_out, train_scale, init_scale)
        self.padding = kernel // 2

    def _deconv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.conv_transpose2d(x, w, b, stride=2, padding=self.padding, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.initialising:
            self._initialise(self._deconv(x, self._direction(), None), (0, 2, 3))
        return self._deconv(x, self.weight(), self.b)


class GaussianNoise(nn.Module):
    """x + N(0, σ²) noise in training mode; identity in evaluation mode."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        return torch.add(x, torch.randn_like(x), alpha=self.sigma)


class ShiftOnlyBatchNorm(nn.Module):
    """Batch norm with a learned shift and no learned scale (the authors' generators)."""

    def __init__(self, n: int, dims: int = 1) -> None:
        super().__init__()
        self.norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(n, affine=False)
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = self.bias if x.dim() == 2 else self.bias.view(1, -1, 1, 1)
        return self.norm(x) + shift
