"""gantricks: DCGAN training with the Improved-GAN tricks as pluggy plugins.

This package's top level is the whole public API a plugin may use; the built-in plugins
and the examples import nothing else from gantricks (tested)::

    from gantricks import Plugin, PluginConfig, hookimpl, GantricksError

- the contract: :class:`Plugin`, :class:`PluginConfig`, :data:`hookimpl`, the hooks in
  :mod:`gantricks.hookspecs`, :class:`StepBatch`, and the interfaces of the players and
  the trainer (:class:`GeneratorLike`, :class:`DiscriminatorLike`, :class:`TrainerAPI`);
- the run: :class:`RunConfig`, :class:`Trainer`, :class:`Models`, the DCGAN players;
- errors: :class:`GantricksError` (a message for the user), :class:`PluginError`,
  :class:`TrainingStopped`, :class:`WriteError` (a file that could not be written: path,
  cause, what was kept);
- tools plugins use: data (:func:`to_float`, :func:`load_dataset`, ...), sampling
  (:func:`draw_latent`, :func:`batch_statistics`, :func:`save_grid`, :func:`isolated_rng`,
  ...), files (:func:`atomic_write`, :func:`atomic_write_text`, :func:`append_text`,
  :func:`load_checkpoint`), evaluation (:class:`Evaluator`,
  :data:`METRICS`) and multi-process helpers (:func:`main_first`).
"""

from __future__ import annotations

__version__ = "0.1.0"

# First, before torch loads: Ctrl-C during the command line's start-up ends it quietly.
from gantricks import startup  # noqa: F401
from gantricks.checkpoint import load as load_checkpoint
from gantricks.config import RunConfig
from gantricks.config import to_json as config_json
from gantricks.contract import DiscriminatorLike, GeneratorLike, StepBatch, TrainerAPI
from gantricks.data import NUM_CLASSES, balanced_subset, load_dataset, to_float, to_uint8
from gantricks.distributed import main_first
from gantricks.errors import GantricksError, PluginError, TrainingStopped, WriteError
from gantricks.files import append_text, atomic_write, atomic_write_bytes, atomic_write_text
from gantricks.markers import hookimpl, hookspec
from gantricks.metrics.evaluate import (
    CLASSIFIER_DATASETS,
    EvalSettings,
    Evaluator,
)
from gantricks.metrics.registry import METRICS
from gantricks.metrics.report import scalars as eval_scalars
from gantricks.metrics.report import write_outputs as write_eval_outputs
from gantricks.models import Discriminator, Generator, Models, conv_blocks
from gantricks.plugin import Plugin, PluginConfig
from gantricks.sampling import (
    batch_norm_from_first,
    batch_statistics,
    draw_latent,
    has_batch_norm,
    image_grid,
    isolated_rng,
    running_statistics_from,
    save_grid,
)
from gantricks.train.loop import Trainer

__all__ = [
    "CLASSIFIER_DATASETS",
    "METRICS",
    "NUM_CLASSES",
    "Discriminator",
    "DiscriminatorLike",
    "EvalSettings",
    "Evaluator",
    "GantricksError",
    "Generator",
    "GeneratorLike",
    "Models",
    "Plugin",
    "PluginConfig",
    "PluginError",
    "RunConfig",
    "StepBatch",
    "Trainer",
    "TrainerAPI",
    "TrainingStopped",
    "WriteError",
    "__version__",
    "append_text",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "balanced_subset",
    "batch_norm_from_first",
    "batch_statistics",
    "config_json",
    "conv_blocks",
    "draw_latent",
    "eval_scalars",
    "has_batch_norm",
    "hookimpl",
    "hookspec",
    "image_grid",
    "isolated_rng",
    "load_checkpoint",
    "load_dataset",
    "main_first",
    "running_statistics_from",
    "save_grid",
    "to_float",
    "to_uint8",
    "write_eval_outputs",
]
