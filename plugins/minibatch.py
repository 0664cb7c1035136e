"""Minibatch discrimination: D's last layer also sees how close each example is to the rest."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from gantricks import GantricksError, Models, Plugin, PluginConfig, RunConfig, hookimpl


def minibatch_features(
    features: torch.Tensor, T: torch.Tensor, exclude_self: bool = False
) -> torch.Tensor:
    """o(x_i)_b = Σ_j exp(−‖M_{i,b} − M_{j,b}‖₁), with M_i = f(x_i)·T ∈ R^{B×C}.

    :param features: (N, A) features f(x_i) of one minibatch.
    :param T: (A, B, C) tensor.
    :param exclude_self: leave out j = i (a constant 1: the paper's formula keeps it, the
        authors' code drops it).
    :return: (N, B).
    """
    n = features.shape[0]
    a, b, c = T.shape
    m = (features @ T.reshape(a, b * c)).reshape(n, b, c)
    # (B, N, C) -> pairwise L1 distances per kernel b: (B, N, N)
    mt = m.transpose(0, 1).contiguous()
    o = torch.exp(-torch.cdist(mt, mt, p=1.0)).sum(dim=2).transpose(0, 1)
    return o - 1 if exclude_self else o


class MinibatchFeatures(nn.Module):
    """D's feature transform f -> cat(f, o(f) + bias), appended before its head.

    With ``weight_norm`` (the authors' layer) T = V · exp(log_scale) / ‖V‖, the norm taken
    over the input axis: an Adam step then turns V's direction by a small angle and changes
    each kernel's scale only through its logarithm. A free T (``weight_norm=False``) of
    4,096 × 500 entries grows by about lr·√A per step, and the distances with it.

    With ``project`` = P, o is computed on a learned linear projection p = f·W ∈ R^P
    (W weight-normalised per output column like T when ``weight_norm``, else a plain
    matrix with columns of norm about 1) and T is P × B × C; the head still sees
    cat(f, o(p)). The authors' ImageNet D computes its minibatch features on a dense layer
    of 2,560 units, not on a wide convolutional map.

    It takes part in the trainer's data-dependent initialisation (``initialising``): on
    that pass its scale and bias are set from the real features it sees, after the layers
    below it and before the head above it, as in the authors' single ``init=True`` pass.
    """

    def __init__(
        self,
        in_features: int,
        kernels: int,
        kernel_dim: int,
        init_std: float,
        weight_norm: bool = True,
        exclude_self: bool = True,
        data_init: bool = True,
        project: int | None = None,
    ) -> None:
        super().__init__()
        self.weight_norm = weight_norm
        self.exclude_self = exclude_self
        self.extra_dim = kernels
        self.project = project
        if project is not None:
            self.W = nn.Parameter(torch.randn(in_features, project) / math.sqrt(in_features))
            if weight_norm:
                self.log_scale_w = nn.Parameter(torch.zeros(project))
            in_features = project
        self.V = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)
        if weight_norm:
            self.log_scale = nn.Parameter(torch.zeros(kernels, kernel_dim))
        else:
            self.register_buffer("log_scale", torch.zeros(kernels, kernel_dim))
        self.bias = nn.Parameter(torch.full((kernels,), -1.0 if weight_norm else 0.0))
        self.data_init = data_init
        self.initialising = False

    @property
    def T(self) -> torch.Tensor:
        if not self.weight_norm:
            return self.V
        return self.V * (self.log_scale.exp() / self.V.norm(dim=0)).unsqueeze(0)

    def projected(self, h: torch.Tensor) -> torch.Tensor:
        """What o reads: f itself, or its projection f·W with ``project``."""
        if self.project is None:
            return h
        w = self.W
        if self.weight_norm:
            w = w * (self.log_scale_w.exp() / w.norm(dim=0)).unsqueeze(0)
        return h @ w

    def minibatch(self, h: torch.Tensor) -> torch.Tensor:
        return minibatch_features(self.projected(h), self.T, self.exclude_self) + self.bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.initialising:
            self.initialise(h.float())
        return torch.cat([h, self.minibatch(h)], dim=1)

    @torch.no_grad()
    def initialise(self, h: torch.Tensor) -> None:
        """The authors' data-dependent initialisation on a batch of real features: each
        kernel's scale so that an example's nearest other example is at L1 distance 2 on
        average, then the bias so that o(x) + bias has mean 0."""
        h = self.projected(h)
        n = h.shape[0]
        a, b, c = self.V.shape
        m = (h @ self.T.reshape(a, b * c)).reshape(n, b, c).transpose(0, 1).contiguous()
        dist = torch.cdist(m, m, p=1.0) + torch.eye(n, device=h.device) * 1e6
        half_mean_min = 0.5 * dist.min(dim=2).values.mean(dim=1).clamp_min(1e-12)  # (B,)
        if self.weight_norm:
            self.log_scale.sub_(half_mean_min.log().unsqueeze(1))
        else:  # a plain T carries its scale itself
            self.V.div_(half_mean_min.view(1, -1, 1))
        self.bias.copy_(-minibatch_features(h, self.T, self.exclude_self).mean(0))
        self.initialising = False


#: (B, C) when unset: the paper's on the authors' models; on dcgan's flat features the
#: size that trained best in the measured grid (benchmarks/RESULTS.md, "Defaults from a
#: measured grid": 100 x 5 collapsed G to 1 class at both seeds, 5 x 3 covered 10 classes
#: and scored best).
PAPER_SIZE = (100, 5)
DCGAN_SIZE = (5, 3)


def default_size(model: str) -> tuple[int, int]:
    """(B, C) of the layer when ``kernels`` and ``kernel_dim`` are not given."""
    return DCGAN_SIZE if model == "dcgan" else PAPER_SIZE


class Config(PluginConfig):
    kernels: int | None = Field(
        None,
        gt=0,
        description="B, number of kernels (unset: 5 on dcgan, from the measured grid in "
        "RESULTS.md 'Defaults from a measured grid'; 100, the paper's, on other models)",
    )
    kernel_dim: int | None = Field(
        None,
        gt=0,
        description="C, dimension of each kernel (unset: 3 on dcgan, as kernels; 5, the "
        "paper's, on other models)",
    )
    init_std: float | None = Field(
        None,
        gt=0,
        description="std of the initial entries of V (none: 0.05 with weight_norm, as "
        "the authors; 1/sqrt(A), unit-norm columns, without)",
    )
    weight_norm: bool = Field(True, description="T = V·exp(log_scale)/‖V‖ (authors)")
    exclude_self: bool = Field(True, description="leave j = i out of o(x_i) (authors)")
    data_init: bool = Field(
        True, description="scale and bias from real images (init_examples of them; authors)"
    )
    project: int | None = Field(
        None,
        gt=0,
        description="P: compute o on a learned linear projection of D's features to P "
        "units (weight-normalised with weight_norm), the head still seeing cat(f, o); "
        "none: on the features themselves",
    )


class MinibatchDiscrimination(Plugin):
    """Minibatch discrimination: D's last layer also sees how close each example is to the rest.

    Salimans et al. (2016), section 3.2. For D's features f(x_i) ∈ R^A and a learned tensor
    T ∈ R^{A×B×C}: M_i = f(x_i)·T; c_b(x_i, x_j) = exp(−‖M_{i,b} − M_{j,b}‖₁);
    o(x_i)_b = Σ_j c_b(x_i, x_j); o(x_i) ∈ R^B is concatenated to f(x_i) before D's last
    layer. Real and generated batches go through D separately, so each minibatch is
    all-real or all-generated.

    By default the layer is the authors' (their ``MinibatchLayer``): T weight-normalised
    with a learned log-scale per kernel entry, j = i left out of the sum, a learned bias on
    o, and scale and bias initialised from real images (the trainer's data-dependent
    initialisation: the first ``init_examples``, 500 by default, as the authors).
    ``weight_norm=false exclude_self=false data_init=false`` gives a plain tensor T and the
    paper's formula. It is a feature transform of D (``add_transform``): the head after it
    is rebuilt for the wider input, whatever the model or the number of classes.

    Size: the paper's B = 100, C = 5 on the authors' models; on ``dcgan``, whose features
    are the flat last map (6,272 values at 28 px), B = 5, C = 3, the size chosen by a
    measured grid (benchmarks/RESULTS.md, "Defaults from a measured grid"), where the
    paper's size made D win at once and G collapse, on the flat features and on a
    128-unit projection of them alike.
    """

    Config = Config

    @hookimpl
    def gantricks_build_models(self, models: Models, config: RunConfig) -> None:
        d = models.discriminator
        if not hasattr(d, "add_transform"):
            raise GantricksError(
                f"minibatch needs a discriminator that takes feature transforms (every "
                f"gantricks model's does); model {config.model!r} built a "
                f"{type(d).__name__}, which does not"
            )
        a, cfg = d.feature_dim, self.config
        b, c = default_size(config.model)
        b, c = cfg.kernels or b, cfg.kernel_dim or c
        # T reads P projected units when projecting, else the A features
        std = cfg.init_std or (0.05 if cfg.weight_norm else 1.0 / math.sqrt(cfg.project or a))
        d.add_transform(
            MinibatchFeatures(
                a, b, c, std, cfg.weight_norm, cfg.exclude_self, cfg.data_init, cfg.project
            )
        )
