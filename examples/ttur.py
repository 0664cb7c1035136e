"""Two time-scale update rule: the discriminator and the generator learn at their own rates.

Heusel et al. (2017) prove convergence to a local Nash equilibrium when D's learning rate
is larger than G's, and train with, for example, 4e-4 for D and 1e-4 for G. Without any
plugin the same is ``--set lr_d=4e-4 lr_g=1e-4``; as a plugin it is a named trick that a
bench can switch on beside others (``gantricks bench --combos "none; ttur; ttur,minibatch"``).
"""

from pydantic import Field

from gantricks import Plugin, PluginConfig, hookimpl


class Config(PluginConfig):
    lr_d: float = Field(4e-4, gt=0, description="the discriminator's learning rate")
    lr_g: float = Field(1e-4, gt=0, description="the generator's learning rate")


class TTUR(Plugin):
    """Two time-scale update rule: the discriminator and the generator learn at their own rates."""

    Config = Config

    @hookimpl
    def gantricks_train_start(self, trainer):
        # After a resume has restored the optimisers (and re-applied lr_d/lr_g from the run's
        # options), so these rates win in both cases.
        for opt, lr in ((trainer.opt_d, self.config.lr_d), (trainer.opt_g, self.config.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr
