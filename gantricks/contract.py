"""What a plugin may rely on: the two players, the trainer and one step's batch.

These are the interfaces of the plugin contract, stated as typed Protocols so that a
plugin author (and a type checker) knows exactly what is there. Every model gantricks
builds satisfies them, including after the built-in plugins have wrapped or changed it
(tested), and the :class:`gantricks.Trainer` satisfies :class:`TrainerAPI`.

The players, as the training step uses them:

- **Generator**: ``G(z)`` takes latent vectors of shape ``(N, nz)`` (drawn by
  :meth:`TrainerAPI.sample_z`: N(0, I), or U(−1, 1) with ``latent = "uniform"``) and
  returns images ``(N, channels, image_size, image_size)`` in [−1, 1], the range the real
  images are scaled to. It stays in training mode for the whole run; samples for grids and
  evaluation are drawn with batch statistics too, without changing its running averages.
- **Discriminator**: ``D(x)`` takes images as G makes them and returns
  ``(logits, features)``: logits ``(N, 1)`` (one real-vs-generated logit) and the flat
  features ``(N, feature_dim)`` that its ``head`` maps to the logits. It stays in training
  mode for the whole run (dropout and noise layers active). Per step it runs three times,
  each on one whole batch, never on a mix: the real batch and the generated batch
  (detached) for its own update, then the generated batch again, with gradients to G, for
  the generator's update; plugins may run it more (feature matching's real features).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from gantricks.config import RunConfig
    from gantricks.data import ImageData
    from gantricks.distributed import DistInfo
    from gantricks.models import Models


@runtime_checkable
class GeneratorLike(Protocol):
    """z ``(N, nz)`` -> images ``(N, channels, image_size, image_size)`` in [−1, 1]."""

    nz: int
    channels: int
    image_size: int

    def __call__(self, z: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class DiscriminatorLike(Protocol):
    """images -> ``(logit (N, 1), features (N, feature_dim))``, in three parts.

    ``features`` is the trunk (images -> flat features: what feature matching matches and
    minibatch discrimination reads); ``transforms`` are feature transforms plugins append
    with ``add_transform`` (minibatch discrimination appends f -> cat(f, o(f))); ``head``
    maps the transformed features to one logit, or to K class logits after
    ``set_classes(K)`` (the K+1 discriminator, whose logit is then their logsumexp).
    The head is rebuilt whenever the transforms or the classes change, so plugins change
    them in ``gantricks_build_models``. ``blocks()`` are the modules ending each block of
    the trunk. Every model gantricks builds has one (:class:`gantricks.models.GanDiscriminator`).
    """

    features: nn.Module
    transforms: nn.ModuleList
    head: nn.Module
    feature_dim: int
    num_classes: int | None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def add_transform(self, transform: nn.Module) -> None: ...

    def set_classes(self, k: int) -> None: ...

    def classify(self, x: torch.Tensor) -> torch.Tensor: ...

    def blocks(self) -> list[nn.Module]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@dataclass
class StepBatch:
    """Everything one training step computed, handed to the step hooks.

    ``real``, ``z`` and ``fake = G(z)`` are this step's clean tensors. What the
    discriminator actually sees can be changed by ``gantricks_discriminator_inputs``
    (instance noise, augmentation): ``d_real`` and ``d_fake`` are its inputs in its own
    update, ``gen_real`` and ``gen_fake`` its inputs in the generator's update (with
    ``generator_batch = "fresh"`` the generator's update uses a new real batch and new z).
    ``gen_fake`` carries gradients to G; ``d_fake`` does not. Fields computed later in the
    step are ``None`` until then.
    """

    real: torch.Tensor
    z: torch.Tensor
    fake: torch.Tensor
    real_target: float | torch.Tensor = 1.0
    fake_target: float | torch.Tensor = 0.0
    d_real: torch.Tensor | None = None
    d_fake: torch.Tensor | None = None
    real_logits: torch.Tensor | None = None
    real_features: torch.Tensor | None = None
    fake_logits: torch.Tensor | None = None
    fake_features: torch.Tensor | None = None
    gen_real: torch.Tensor | None = None
    gen_fake: torch.Tensor | None = None
    gen_logits: torch.Tensor | None = None
    gen_features: torch.Tensor | None = None


@runtime_checkable
class TrainerAPI(Protocol):
    """The trainer as plugins see it (every hook's ``trainer`` argument).

    Attributes are read-only for plugins except where a hook's documentation says
    otherwise; ``step`` counts completed steps.
    """

    config: RunConfig
    models: Models
    device: torch.device
    dist: DistInfo
    data: ImageData
    run_dir: Path
    step: int
    #: Length of the run in steps, known from ``gantricks_train_start`` on, also for a run
    #: given in epochs.
    total_steps: int
    #: Steps (global batches) in one pass over the training images.
    steps_per_epoch: int
    #: False while a step is in progress (its updates may be partly applied).
    step_complete: bool
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    #: The last scalars passed to ``gantricks_log`` (empty before the first log).
    last_scalars: dict[str, float]
    #: Set by Ctrl-C or SIGTERM: the run stops after the current step.
    stop_requested: bool

    @property
    def generator(self) -> nn.Module: ...

    @property
    def discriminator(self) -> nn.Module: ...

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that sample grids, evaluation and the sampling commands use:
        ``generator`` unless a plugin chose another (``gantricks_sampling_generator``)."""
        ...

    def sample_z(self, n: int) -> torch.Tensor:
        """``n`` latent vectors from the run's seeded noise stream (checkpointed)."""
        ...

    def preview(self, n: int = 64) -> torch.Tensor:
        """Images from ``n`` latent vectors fixed for the whole run, computed once per step
        and shared by every plugin that shows samples."""
        ...

    def autocast(self) -> AbstractContextManager[Any]:
        """The context forward passes run in (bf16 autocast with ``precision = "bf16"``)."""
        ...

    def save_checkpoint(self, path: str | Path, require_finite: bool = True) -> Path:
        """Write a checkpoint atomically; refuse non-finite weights unless told not to."""
        ...

    def parameters_finite(self) -> bool:
        """One device read: are every parameter of G and D finite?"""
        ...
