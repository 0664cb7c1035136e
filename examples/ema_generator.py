"""An exponential moving average of the generator's weights, used for samples and scores.

Yazıcı et al. (2019): the average of G's recent weights often samples better than G
itself. The average is a second generator kept in ``models.extra`` (saved in checkpoints,
trained by no optimiser) and updated after every generator step; through
``gantricks_sampling_generator`` it is what sample grids, evaluation, ``gantricks sample``
and the latent tools draw from.
"""

import copy

import torch
from pydantic import Field

from gantricks import Plugin, PluginConfig, hookimpl

KEY = "ema_generator"


class Config(PluginConfig):
    decay: float = Field(0.999, ge=0, lt=1, description="weight of the old average per step")


class EMAGenerator(Plugin):
    """An exponential moving average of the generator's weights, used for samples and scores."""

    Config = Config
    graph_safe = True  # tensor work only

    @hookimpl(trylast=True)  # after other plugins have wrapped or changed G
    def gantricks_build_models(self, models):
        ema = copy.deepcopy(models.generator)
        ema.requires_grad_(False)
        models.extra[KEY] = ema

    @hookimpl(trylast=True)  # after data-dependent initialisation (gantricks.ordering)
    def gantricks_train_start(self, trainer):
        ema, g = trainer.models.extra[KEY], trainer.generator
        if trainer.step == 0:  # a resumed run's average came back with the checkpoint
            ema.load_state_dict(g.state_dict())
        self.pairs = list(zip(ema.parameters(), g.parameters(), strict=True))
        self.buffers = list(zip(ema.buffers(), g.buffers(), strict=True))

    @hookimpl
    def gantricks_after_generator_step(self):
        with torch.no_grad():
            averages, weights = zip(*self.pairs, strict=True)
            torch._foreach_lerp_(list(averages), list(weights), 1.0 - self.config.decay)
            for average, current in self.buffers:  # batch-norm statistics: the latest
                average.copy_(current)

    @hookimpl
    def gantricks_sampling_generator(self, models):
        return models.extra[KEY]
