"""Virtual batch norm: G normalises each example with a fixed reference batch, not its batch."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from gantricks import (
    GantricksError,
    Models,
    Plugin,
    PluginConfig,
    RunConfig,
    Trainer,
    draw_latent,
    hookimpl,
    to_float,
)


class VirtualBatchNorm(nn.Module):
    """Batch norm whose statistics come from a reference batch plus the example itself.

    The input is ``cat(reference, x)``, ``(N, C)`` or ``(N, C, H, W)``: the first
    ``ref_size`` rows are the reference batch's activations. The reference rows are
    normalised with the reference statistics (μ_ref, E_ref[h²]) over the batch (and height
    and width); each other example i with μ_i = (1/(N+1)) mean_i + (N/(N+1)) μ_ref (and
    the same for the mean of squares, so σ_i² = E_i[h²] − μ_i², in fp32 at least), where
    mean_i is its own per-channel mean (over height and width; its value, for a vector).
    Gradients flow through the reference statistics. No running statistics: training and
    sampling behave the same. ``affine=False`` for a batch norm without scale and shift.
    """

    def __init__(
        self, num_features: int, ref_size: int, eps: float = 1e-5, affine: bool = True
    ) -> None:
        super().__init__()
        self.ref_size = ref_size
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, new = self.ref_size, 1.0 / (self.ref_size + 1.0)
        # Statistics in fp32 (fp64 kept): in bf16 (autocast) E[h²] − μ² cancels to noise or
        # below zero once |μ| is a few times σ, and the square root gives NaN. In fp32 the
        # same formula holds to |μ|/σ of several hundred, and the clamp guards the rest.
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        ref, rest = wide[:n], wide[n:]
        spatial = tuple(range(2, x.dim()))
        ref_mean = ref.mean(dim=(0, *spatial), keepdim=True)
        ref_sq = ref.square().mean(dim=(0, *spatial), keepdim=True)
        own_mean = rest.mean(dim=spatial, keepdim=True) if spatial else rest
        own_sq = rest.square().mean(dim=spatial, keepdim=True) if spatial else rest.square()
        mean = new * own_mean + (1.0 - new) * ref_mean
        sq = new * own_sq + (1.0 - new) * ref_sq
        # One scale and shift per row (and channel), reference rows first, then one pass
        # over x: y = x·(γ/σ) + (β − μ·γ/σ).
        rows = (n, *[-1] * (x.dim() - 1))
        ref_var = (ref_sq - ref_mean.square()).expand(*rows)
        var = torch.cat([ref_var, sq - mean.square()])
        mean = torch.cat([ref_mean.expand(*rows), mean])
        scale = torch.rsqrt(var.clamp_min(0) + self.eps)
        channel = (1, -1, *[1] * len(spatial))
        if self.affine:
            scale = scale * self.weight.view(channel)
            shift = self.bias.view(channel) - mean * scale
        else:
            shift = -mean * scale
        return (wide * scale + shift).to(x.dtype)


#: The name this layer had when it took images only.
VirtualBatchNorm2d = VirtualBatchNorm


class WithReference(nn.Module):
    """Runs ``module`` on cat(reference, x) and returns only the rows of ``x``.

    The reference batch is a buffer, so it is saved in checkpoints with the model and a
    loaded model samples with the same reference it was trained with.
    """

    def __init__(self, module: nn.Module, reference: torch.Tensor) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("reference", reference)

    # A wrapped generator still describes itself (gantricks.GeneratorLike).
    @property
    def nz(self) -> int:
        return self.module.nz

    @property
    def channels(self) -> int:
        return self.module.channels

    @property
    def image_size(self) -> int:
        return self.module.image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.reference.shape[0]
        return self.module(torch.cat([self.reference, x.to(self.reference.dtype)]))[n:]


def replace_batchnorm(module: nn.Module, ref_size: int) -> int:
    """Swap every batch-norm layer inside ``module`` (1-D or 2-D) for a virtual one; return
    how many. Affine parameters are copied, so the model's initialisation is kept."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm1d | nn.BatchNorm2d):
            vbn = VirtualBatchNorm(child.num_features, ref_size, child.eps, child.affine)
            if child.affine:
                with torch.no_grad():
                    vbn.weight.copy_(child.weight)
                    vbn.bias.copy_(child.bias)
            setattr(module, name, vbn)
            count += 1
        else:
            count += replace_batchnorm(child, ref_size)
    return count


class Config(PluginConfig):
    reference_size: int = Field(64, gt=0, description="N, examples in the reference batch")
    discriminator: bool = Field(False, description="also replace D's batch norm")


class VirtualBatchNormPlugin(Plugin):
    """Virtual batch norm: G normalises each example with a fixed reference batch, not its batch.

    Salimans et al. (2016), section 3.5. A reference batch of z is drawn once (seeded) and
    saved with the generator. Every generator forward runs on cat(reference z, z): the VBN
    layers take statistics from the reference rows (recomputed each step, gradients
    flowing) combined with each example's own (weights N/(N+1) and 1/(N+1)), so an
    example's output does not depend on the other examples in its batch. With
    ``discriminator=true`` D's batch-norm layers become VBN too, with a fixed, seeded
    batch of real images as reference.
    """

    Config = Config

    @hookimpl
    def gantricks_build_models(self, models: Models, config: RunConfig) -> None:
        n = self.config.reference_size
        if not replace_batchnorm(models.generator, n):
            raise GantricksError(
                f"virtual_batchnorm: the generator of model {config.model!r} has no batch "
                "norm to make virtual"
            )
        gen = torch.Generator().manual_seed(config.seed + 7919)
        ref_z = draw_latent(n, models.nz, config.latent, generator=gen)
        models.generator = WithReference(models.generator, ref_z)
        if self.config.discriminator:
            d = models.discriminator
            if not replace_batchnorm(d.features, n):
                raise GantricksError(
                    f"virtual_batchnorm.discriminator=true: the discriminator of model "
                    f"{config.model!r} has no batch norm (the Improved-GAN authors' have "
                    "none); leave virtual_batchnorm.discriminator false"
                )
            # Filled with real images at train start; shaped now so checkpoints match.
            shape = (n, models.generator.channels)
            size = config.image_size or 0
            d.features = WithReference(d.features, torch.zeros(*shape, size, size))

    @hookimpl(tryfirst=True)  # D's reference batch before others initialise from D's output
    def gantricks_train_start(self, trainer: Trainer) -> None:
        if not self.config.discriminator or trainer.step > 0:
            return  # on resume the reference came back with the discriminator's state
        images = trainer.data.images
        gen = torch.Generator().manual_seed(trainer.config.seed + 7927)
        idx = torch.randperm(images.shape[0], generator=gen)[: self.config.reference_size]
        ref = trainer.discriminator.features.reference
        ref.copy_(to_float(images[idx.to(images.device)]).to(ref.device))
