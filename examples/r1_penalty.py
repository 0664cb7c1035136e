"""R1 gradient penalty on real images: gamma/2 * E ||grad_x D(x)||^2 (Mescheder et al. 2018)."""

import torch
from pydantic import BaseModel, ConfigDict, Field

from gantricks import hookimpl


class Plugin:
    """R1 gradient penalty on real images: gamma/2 * E ||grad_x D(x)||^2."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        gamma: float = Field(10.0, ge=0, description="penalty weight")

    def __init__(self, config: Config) -> None:
        self.config = config

    @hookimpl
    def gantricks_discriminator_loss(self, trainer, terms, batch):
        real = batch.real.detach().requires_grad_(True)
        logits, _ = trainer.discriminator(real)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        terms["r1"] = self.config.gamma / 2 * grad.square().flatten(1).sum(1).mean()
