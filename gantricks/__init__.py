"""gantricks: DCGAN training with the Improved-GAN tricks as pluggy plugins.

The public API a plugin may import::

    from gantricks import hookimpl, GantricksError, RunConfig, Trainer, StepBatch, Models
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Decorator for hook implementations: ``@hookimpl def gantricks_generator_loss(...)``.
hookimpl = pluggy.HookimplMarker("gantricks")

from gantricks.config import RunConfig  # noqa: E402
from gantricks.errors import GantricksError, PluginError, TrainingStopped  # noqa: E402
from gantricks.models import Discriminator, Generator, Models  # noqa: E402
from gantricks.trainer import StepBatch, Trainer  # noqa: E402

__all__ = [
    "Discriminator",
    "GantricksError",
    "Generator",
    "Models",
    "PluginError",
    "RunConfig",
    "StepBatch",
    "Trainer",
    "TrainingStopped",
    "__version__",
    "hookimpl",
]
