"""One-sided label smoothing: real targets alpha (default 0.9), generated targets 0."""

from __future__ import annotations

from pydantic import Field, model_validator

from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    alpha: float = Field(0.9, gt=0, le=1, description="target for real images")
    two_sided: bool = Field(False, description="allow a non-zero target for generated images")
    beta: float = Field(0.0, ge=0, lt=1, description="target for generated images")

    @model_validator(mode="after")
    def _one_sided_unless_asked(self) -> Config:
        if self.beta != 0 and not self.two_sided:
            raise ValueError(
                f"beta={self.beta} smooths the generated side, which the paper shows "
                "hurts; set label_smooth.two_sided=true to do it anyway"
            )
        if self.beta >= self.alpha:
            raise ValueError(f"beta={self.beta} must be below alpha={self.alpha}")
        return self


class LabelSmoothing(Plugin):
    """One-sided label smoothing: real targets alpha (default 0.9), generated targets 0.

    Salimans et al. (2016), section 3.4: the discriminator is trained towards alpha instead
    of 1 on real images. Smoothing the generated side too (beta > 0) is only allowed with
    ``two_sided=true``: the paper shows that a non-zero fake target shapes the optimal
    discriminator as (alpha p_data + beta p_model) / (p_data + p_model), so in regions where
    p_data is near zero and p_model is large, erroneous samples have no incentive to move
    nearer to the data.
    """

    Config = Config

    #: Step hooks are device work only: a CUDA graph of the step may replay them.
    graph_safe = True

    @hookimpl
    def gantricks_discriminator_targets(self) -> tuple[float, float]:
        return self.config.alpha, self.config.beta
