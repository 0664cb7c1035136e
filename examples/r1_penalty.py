"""R1 gradient penalty on real images: gamma/2 * E ||grad_x D(x)||^2 (Mescheder et al. 2018)."""

import torch
from pydantic import Field

from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    gamma: float = Field(10.0, ge=0, description="penalty weight")


class R1Penalty(Plugin):
    """R1 gradient penalty on real images: gamma/2 * E ||grad_x D(x)||^2."""

    Config = Config
    graph_safe = True  # tensor work only

    @hookimpl
    def gantricks_discriminator_loss(self, trainer, terms, batch):
        real = batch.d_real.detach().requires_grad_(True)  # the real images D saw
        logits, _ = trainer.discriminator(real)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        terms["r1"] = self.config.gamma / 2 * grad.square().flatten(1).sum(1).mean()
