"""Feature matching: G matches the mean of D's features on real and generated images."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from gantricks import (
    GantricksError,
    Plugin,
    PluginConfig,
    StepBatch,
    Trainer,
    batch_norm_from_first,
    conv_blocks,
    has_batch_norm,
    hookimpl,
)


def feature_matching_loss(
    real_features: torch.Tensor, fake_features: torch.Tensor, norm: str = "l2sq"
) -> torch.Tensor:
    """‖mean f(real) − mean f(fake)‖²₂ (``l2sq``, the paper), the mean squared difference
    over features (``mse``, the authors' MNIST code) or mean |difference| (``l1``, the
    authors' CIFAR-10 code). Means are over the batch; ``real_features`` should be detached
    by the caller."""
    diff = real_features.flatten(1).mean(0) - fake_features.flatten(1).mean(0)
    if norm == "l2sq":
        return diff.square().sum()
    if norm == "mse":
        return diff.square().mean()
    if norm == "l1":
        return diff.abs().mean()
    raise ValueError(f"unknown norm {norm!r}")


class Config(PluginConfig):
    layer: int = Field(
        -1, description="D conv block whose activations are matched (1 = first; -1 = last)"
    )
    norm: Literal["l2sq", "mse", "l1"] = Field(
        "l2sq",
        description="l2sq: squared L2 (paper); mse: mean squared diff (authors' MNIST "
        "code); l1: mean |diff| (authors' CIFAR-10 code)",
    )
    mode: Literal["replace", "add"] = Field(
        "replace", description="replace the adversarial G loss, or add to it"
    )
    weight: float = Field(1.0, gt=0, description="weight of the feature-matching term")
    normalisation: Literal["real", "separate"] = Field(
        "real",
        description="real: where D has batch norm, f(real) and f(fake) from one pass of D's "
        "trunk normalised with the real batch's statistics, so the per-channel means FM "
        "matches survive; separate: each batch normalised by its own statistics, which "
        "erases them (D without batch norm: the same either way)",
    )
    real_features: Literal["current", "discriminator_step"] = Field(
        "current",
        description="separate normalisation: f(real) from the updated D on G's real batch "
        "(as the authors' code), or the D step's (one D forward cheaper)",
    )


class FeatureMatching(Plugin):
    """Feature matching: G matches the mean of D's features on real and generated images.

    Salimans et al. (2016), section 3.1: the generator minimises
    ‖E_x f(x) − E_z f(G(z))‖²₂, where f are the discriminator's activations at an
    intermediate layer. By default f is the last layer before the output (D's trunk) and
    the objective replaces the adversarial generator loss, as in the paper.

    A D whose batch norm normalises the all-real and the all-generated batch separately
    makes each batch's per-channel means zero before f, erasing much of what FM should
    match; by default (``normalisation=real``) both batches' features come from one pass in
    which batch norm uses the real batch's statistics (``benchmarks/fm_batchnorm.py``
    measures the difference). The authors' Ds have no batch norm, where both are the same.
    """

    Config = Config
    #: Step hooks are device work only: a CUDA graph of the step may replay them.
    graph_safe = True

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self.captured: list[torch.Tensor] = []
        self.recording = False  # only D's passes inside a training step are kept
        self.handle: torch.utils.hooks.RemovableHandle | None = None

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        trunk = trainer.discriminator.features
        self.joint = self.config.normalisation == "real" and has_batch_norm(trunk)
        if self.config.layer == -1:
            return  # D's trunk output is already in the StepBatch
        if getattr(trunk, "reference", None) is not None:
            # A reference batch (virtual batch norm in D) would be mixed into the means.
            raise GantricksError(
                f"feature_matching.layer={self.config.layer} cannot be used while D's trunk "
                "runs on a reference batch (virtual_batchnorm.discriminator=true); use "
                "feature_matching.layer=-1"
            )
        blocks = conv_blocks(trainer.discriminator)
        if not 1 <= self.config.layer <= len(blocks):
            raise GantricksError(
                f"feature_matching.layer={self.config.layer} is not a discriminator block; "
                f"allowed: 1..{len(blocks)} or -1 (the last)"
            )
        self.handle = blocks[self.config.layer - 1].register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args: object, output: torch.Tensor) -> None:
        if self.recording:
            self.captured.append(output)

    @hookimpl
    def gantricks_step_start(self) -> None:
        # D(real), D(fake), D(fake) for G follow: only this step's passes are kept.
        self.captured.clear()
        self.recording = True

    @hookimpl
    def gantricks_generator_loss(
        self, trainer: Trainer, terms: dict[str, torch.Tensor], batch: StepBatch
    ) -> None:
        real, fake = self._features(trainer.discriminator, batch)
        loss = self.config.weight * feature_matching_loss(real.detach(), fake, self.config.norm)
        if self.config.mode == "replace":
            terms.pop("adv", None)
        terms["feature_matching"] = loss

    def _features(self, d: nn.Module, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(real), f(fake)) of this generator update."""
        hooked = self.handle is not None
        if self.joint:
            n = batch.gen_real.shape[0]
            with batch_norm_from_first(d.features, n):
                h = d.features(torch.cat([batch.gen_real, batch.gen_fake]))
            h = self.captured[-1] if hooked else h
            return h[:n], h[n:]
        fake = self.captured[-1] if hooked else batch.gen_features
        if self.config.real_features == "discriminator_step":
            return (self.captured[0] if hooked else batch.real_features), fake
        with torch.no_grad():
            _, real = d(batch.gen_real)
        return (self.captured[-1] if hooked else real), fake

    @hookimpl
    def gantricks_step_end(self) -> None:
        self.recording = False  # D's uses outside the step (evaluation) are not kept

    @hookimpl
    def gantricks_train_end(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.captured.clear()
