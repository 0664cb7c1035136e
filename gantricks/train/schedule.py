"""A linear learning-rate decay to zero over the last part of a run.

With ``lr_decay_epochs = N`` the rates are scaled, epoch by epoch, by
min(1, (E − e)/N) for epoch e of E (0-based), as the authors' code does (``lr ·
min(3 − epoch/400, 1)`` over 1,200 epochs); with ``lr_decay_steps = N``, step by step, by
min(1, (T − t)/N) for step t of T. The factor is a function of the step alone, so a resumed
run continues the schedule exactly.
"""

from __future__ import annotations

import math

from gantricks.config import RunConfig


def lr_factor(config: RunConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rates' multiplier for the step ``step`` (0-based)."""
    if config.lr_decay_steps is not None:
        return min(1.0, (total_steps - step) / config.lr_decay_steps)
    if config.lr_decay_fraction is not None:
        return min(1.0, (total_steps - step) / (config.lr_decay_fraction * total_steps))
    if config.lr_decay_epochs is not None:
        epochs = math.ceil(total_steps / steps_per_epoch)
        return min(1.0, (epochs - step // steps_per_epoch) / config.lr_decay_epochs)
    return 1.0


def decays(config: RunConfig) -> bool:
    """Whether the run decays its learning rates."""
    chosen = (config.lr_decay_steps, config.lr_decay_epochs, config.lr_decay_fraction)
    return any(d is not None for d in chosen)
