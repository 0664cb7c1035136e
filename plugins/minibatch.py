"""Minibatch discrimination: D's last layer also sees how close each example is to the rest."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gantricks import Models, RunConfig, hookimpl


def minibatch_features(features: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """o(x_i)_b = Σ_j exp(−‖M_{i,b} − M_{j,b}‖₁), with M_i = f(x_i)·T ∈ R^{B×C}.

    :param features: (N, A) features f(x_i) of one minibatch.
    :param T: (A, B, C) learned tensor.
    :return: (N, B); the sum over j includes j = i (a constant 1, as in the paper's formula).
    """
    n = features.shape[0]
    a, b, c = T.shape
    m = (features @ T.reshape(a, b * c)).reshape(n, b, c)
    # (B, N, C) -> pairwise L1 distances per kernel b: (B, N, N)
    dist = torch.cdist(m.transpose(0, 1).contiguous(), m.transpose(0, 1).contiguous(), p=1.0)
    return torch.exp(-dist).sum(dim=2).transpose(0, 1)


class MinibatchHead(nn.Module):
    """Replaces D's head: features -> concat(features, o(features)) -> linear -> logit."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int, init_std: float) -> None:
        super().__init__()
        self.T = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)
        self.out = nn.Linear(in_features + kernels, 1)
        nn.init.normal_(self.out.weight, 0.0, 0.02)  # DCGAN initialisation
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([h, minibatch_features(h, self.T)], dim=1))


class Plugin:
    """Minibatch discrimination: D's last layer also sees how close each example is to the rest.

    Salimans et al. (2016), section 3.2. For D's features f(x_i) ∈ R^A and a learned tensor
    T ∈ R^{A×B×C}: M_i = f(x_i)·T; c_b(x_i, x_j) = exp(−‖M_{i,b} − M_{j,b}‖₁);
    o(x_i)_b = Σ_j c_b(x_i, x_j); o(x_i) ∈ R^B is concatenated to f(x_i) before D's last
    layer. Real and generated batches go through D separately, so each minibatch is
    all-real or all-generated.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kernels: int = Field(100, gt=0, description="B, number of kernels")
        kernel_dim: int = Field(5, gt=0, description="C, dimension of each kernel")
        init_std: float | None = Field(
            None,
            gt=0,
            description="std of T's initial entries (none: 1/sqrt(A), "
            "unit-norm columns, as the authors' weight-normalised layer starts)",
        )

    def __init__(self, config: Config) -> None:
        self.config = config

    @hookimpl
    def gantricks_build_models(self, models: Models, config: RunConfig) -> None:
        d = models.discriminator
        a = d.feature_dim
        std = self.config.init_std or 1.0 / math.sqrt(a)
        d.head = MinibatchHead(a, self.config.kernels, self.config.kernel_dim, std)
