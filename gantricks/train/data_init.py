"""The models' data-dependent initialisation, once, when a new run starts.

Modules that take part (weight-normalised layers, minibatch discrimination; see
:mod:`gantricks.models.layers`) are initialised in one forward pass each, layer after layer
as the authors' ``init=True`` pass does: G's on a batch of latent vectors from their own
seeded stream, then D's on the first ``init_examples`` real images. Batch-norm running
statistics are left as they were; noise and dropout layers draw from torch's global
generator, as in training.

It runs at ``gantricks_train_start`` after every plain implementation and before the
plugins' ``trylast`` ones (``prepare`` registers it before any plugin, as ``trylast``, and
pluggy calls the earliest-registered ``trylast`` first): after plugins that set up what D's
output depends on (a reference batch) and before those that record the weights
(historical averaging's first mean, an EMA copy of G).
"""

from __future__ import annotations

from typing import Any

import torch

from gantricks.data import to_float
from gantricks.markers import hookimpl
from gantricks.models.layers import initialising
from gantricks.sampling import batch_statistics, fixed_noise

#: The name it is registered under (not a plugin: it cannot be removed).
NAME = "gantricks:data_init"


class DataDependentInit:
    """Initialises the players from data at the start of a new run (not on resume)."""

    @hookimpl(trylast=True)
    def gantricks_train_start(self, trainer: Any) -> None:
        if trainer.step > 0:  # a resumed run's weights came back with the checkpoint
            return
        c, device = trainer.config, trainer.device
        g, d = trainer.models.generator, trainer.models.discriminator
        # forward(), not the module's __call__: that one may be compiled (compile=true), and
        # this runs before the compiled step's fallback could catch a failure.
        with torch.no_grad():
            with initialising(g) as any_in_g, batch_statistics(g):
                if any_in_g:
                    g.forward(fixed_noise(c.batch_size, c.nz, c.seed + 5, device, c.latent))
            with initialising(d) as any_in_d, batch_statistics(d):
                if any_in_d:
                    n = min(c.init_examples, len(trainer.data))
                    d.forward(to_float(trainer.data.images[:n].to(device)))
