"""Instance noise: Gaussian noise on every image the discriminator sees, annealed to zero.

Sønderby et al. (2017) and Arjovsky & Bottou (2017): noise on both the real and the
generated images makes their distributions overlap, so D cannot separate them perfectly
and G keeps a useful gradient. It is added where D's inputs are chosen
(``gantricks_discriminator_inputs``), in D's update and in G's, so D always judges noisy
images; the noise carries gradients back to G unchanged.
"""

import torch
from pydantic import Field

from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    sigma: float = Field(0.1, ge=0, description="noise std at the start (images are in [-1, 1])")
    anneal_steps: int = Field(
        0, ge=0, description="steps over which sigma falls linearly to 0 (0: constant)"
    )


class InstanceNoise(Plugin):
    """Instance noise: Gaussian noise on every image the discriminator sees, annealed to zero."""

    Config = Config
    # The std lives in a device tensor updated between steps: a CUDA graph replays it.
    graph_safe = True

    def sigma_at(self, step: int) -> float:
        """The noise std after ``step`` steps."""
        c = self.config
        if not c.anneal_steps:
            return c.sigma
        return c.sigma * max(0.0, 1.0 - step / c.anneal_steps)

    @hookimpl
    def gantricks_train_start(self, trainer):
        # Derived from the step, so a resumed run continues the schedule exactly.
        self.sigma = torch.full((), self.sigma_at(trainer.step), device=trainer.device)

    @hookimpl
    def gantricks_discriminator_inputs(self, inputs):
        for key, images in inputs.items():
            inputs[key] = images + self.sigma * torch.randn_like(images)

    @hookimpl
    def gantricks_step_end(self, step):
        self.sigma.fill_(self.sigma_at(step))
        self.log("instance_noise/sigma", self.sigma_at(step))
