"""Every hook a gantricks plugin can implement, documented where it is declared.

A plugin implements a hook by defining a function (or method) with the hook's name,
decorated with :data:`gantricks.hookimpl`, taking any subset of the arguments listed
here, by name. Hooks run in pluggy's order: the plugin registered last runs first,
adjusted by ``tryfirst``/``trylast``. Built-in defaults are registered first, so user
plugins run before them.

The order of one run::

    gantricks_configure
    gantricks_build_models
    gantricks_train_start
    per step:
        gantricks_discriminator_targets
        gantricks_discriminator_loss
        gantricks_after_discriminator_step
        gantricks_generator_loss
        gantricks_after_generator_step
        gantricks_step_end
        gantricks_log                  (every ``log_every`` steps)
    gantricks_train_end

``gantricks_state_dict`` is called when a checkpoint is written, and
``gantricks_load_state_dict`` when one is resumed: right after ``gantricks_train_start``
(which already sees the restored models, optimisers and ``trainer.step``), before the
first resumed step.

Loss hooks receive a :class:`gantricks.StepBatch` and a mutable ``terms`` dict of named
scalar tensors; the trainer sums the dict after the hook and logs every term by name.
No hook should move tensors to the host per step (``.item()``, ``.cpu()``, printing a
tensor): that stalls the device. Read values in ``gantricks_log`` instead.

With ``cuda_graph = true`` the five step hooks (``gantricks_discriminator_targets`` to
``gantricks_after_generator_step``) run once, while the step is captured as a CUDA graph;
afterwards only the kernels they launched are replayed. A plugin whose step hooks do tensor
work only (no Python counters or state that changes per step, no host reads, randomness
from torch's global generator) declares the class attribute ``graph_safe = True``; any
other plugin implementing a step hook turns the graph off, with a warning naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from gantricks.config import RunConfig
    from gantricks.models import Models
    from gantricks.trainer import StepBatch, Trainer

hookspec = pluggy.HookspecMarker("gantricks")


@hookspec
def gantricks_configure(config: RunConfig) -> None:
    """Check or react to the resolved run configuration before anything is built.

    Called once per run, after every plugin is loaded and every option validated.

    :param config: the resolved :class:`gantricks.RunConfig` (read it; do not mutate).
        A plugin's own validated options are its ``self.config`` when the plugin is a
        class; ``config.plugin_options[name]`` holds them as a dict as well.

    Raise :class:`gantricks.GantricksError` to reject a combination of options with a
    message the user can act on. The return value is ignored.
    """


@hookspec
def gantricks_build_models(models: Models, config: RunConfig) -> None:
    """Modify or wrap the generator and discriminator before optimisers are made.

    Called once per run, after the DCGAN models are built and initialised and before
    they are moved to the device and given to the optimisers. Mutate ``models`` in
    place: replace ``models.generator`` with a wrapper, swap layers inside it (virtual
    batch norm), or replace ``models.discriminator.head`` (the layer that maps the
    trunk's flat features to the logit) with a new module that adds, for example,
    minibatch features. Parameters of modules added here are trained by the owning
    player's optimiser and saved in checkpoints.

    :param models: :class:`gantricks.Models` holding ``generator`` (z -> image) and
        ``discriminator`` (image -> ``(logits, features)``).
    :param config: the resolved run configuration.

    The return value is ignored.
    """


@hookspec
def gantricks_train_start(trainer: Trainer) -> None:
    """Called once when training is about to start (or resume), models on the device.

    :param trainer: the :class:`gantricks.Trainer`; ``trainer.models``,
        ``trainer.opt_g``/``trainer.opt_d``, ``trainer.run_dir``, ``trainer.device``
        and ``trainer.step`` are ready. On resume, models, optimisers and ``step`` are
        already restored; plugin state is not yet: ``gantricks_load_state_dict`` follows.

    Order matters here: a plugin that sets weights from data (minibatch, semi_supervised)
    must run after one that makes D's output meaningful (virtual_batchnorm's reference
    batch, ``tryfirst``) and before one that records the weights (historical_averaging's
    first mean, ``trylast``). Mark such an implementation the same way.

    A plugin that cannot work with this run (no labels, an unsuitable layer) raises
    :class:`gantricks.GantricksError` here. A new run then gives its folder back if it
    holds nothing but its ``config.json`` (the folder itself is removed only when the run
    made it). The return value is ignored.
    """


@hookspec(firstresult=True)
def gantricks_discriminator_targets(
    trainer: Trainer, batch: StepBatch
) -> tuple[float | torch.Tensor, float | torch.Tensor] | None:
    """Choose the discriminator's targets for real and generated images this step.

    Called every step before the discriminator loss. ``firstresult``: the first plugin
    that returns a value decides; returning ``None`` passes. When no plugin decides,
    the targets are ``(1.0, 0.0)``. Later implementations are skipped once one decides, so
    a plugin that needs a per-step call here regardless (to reset state) implements it as
    a wrapper, ``@hookimpl(wrapper=True)``, which always runs.

    :param trainer: the running trainer.
    :param batch: this step's :class:`gantricks.StepBatch` (real images, z, generated
        images; logits not yet computed).
    :return: ``(real_target, fake_target)``, each a float or a tensor broadcastable to
        the logits' shape ``(batch, 1)``, or ``None`` to pass.
    """


@hookspec
def gantricks_discriminator_loss(
    trainer: Trainer, terms: dict[str, torch.Tensor], batch: StepBatch
) -> None:
    """Add, replace or remove terms of the discriminator's loss.

    Called every step after the discriminator has seen the real and the generated
    batch (separately, so each minibatch is all-real or all-generated). ``terms`` holds
    ``"real"`` and ``"fake"``: binary cross-entropy of the logits against the targets.
    The trainer minimises the sum of ``terms`` after every plugin has run and logs
    each entry as ``loss_d/<name>``.

    :param trainer: the running trainer.
    :param terms: mutable dict of named scalar loss tensors.
    :param batch: this step's :class:`gantricks.StepBatch` with ``real_logits``,
        ``real_features``, ``fake_logits``, ``fake_features`` (generated images
        detached from the generator) and the targets.

    The return value is ignored.
    """


@hookspec
def gantricks_after_discriminator_step(trainer: Trainer) -> None:
    """Called every step right after the discriminator's optimiser step.

    :param trainer: the running trainer; ``trainer.step`` is the index of the step in
        progress (0-based, not yet counted).

    The return value is ignored. Typical use: update running averages of D's weights.
    """


@hookspec
def gantricks_generator_loss(
    trainer: Trainer, terms: dict[str, torch.Tensor], batch: StepBatch
) -> None:
    """Add, replace or remove terms of the generator's loss.

    Called every step after the updated discriminator has seen ``batch.gen_fake``, with
    gradients to the generator: the discriminator step's generated batch, or with
    ``generator_batch = "fresh"`` one from new z. ``terms`` holds ``"adv"``: the
    non-saturating loss, binary cross-entropy of the logits against 1. The trainer
    minimises the sum and logs each entry as ``loss_g/<name>``.

    :param trainer: the running trainer.
    :param terms: mutable dict of named scalar loss tensors.
    :param batch: this step's batch; ``gen_logits`` and ``gen_features`` are the
        discriminator's outputs on ``gen_fake`` for this generator step; ``gen_real``
        is the real batch to compare it with (``real``, or a second, independently
        shuffled batch with ``generator_batch = "fresh"``); ``real_features`` are from
        the discriminator step (before its update).

    The return value is ignored.
    """


@hookspec
def gantricks_after_generator_step(trainer: Trainer) -> None:
    """Called every step right after the generator's optimiser step.

    :param trainer: the running trainer (``trainer.step`` not yet incremented).

    The return value is ignored.
    """


@hookspec
def gantricks_step_end(trainer: Trainer, step: int) -> None:
    """Called at the end of every step.

    :param trainer: the running trainer.
    :param step: the number of steps completed so far (1 after the first step).

    The return value is ignored. Keep this cheap and free of host-device syncs; do
    periodic work (sample grids, checkpoints) when ``step % every == 0``.
    """


@hookspec
def gantricks_log(trainer: Trainer, step: int, scalars: dict[str, float]) -> None:
    """Called every ``log_every`` steps (and at the end) with host-side scalars.

    :param trainer: the running trainer.
    :param step: steps completed so far.
    :param scalars: name -> float: every loss term averaged over the steps since the
        last log (``loss_d/<term>``, ``loss_g/<term>``, ``loss_d``, ``loss_g``),
        ``img_per_s`` and ``epoch``. The same dict is written to ``metrics.jsonl``.

    The return value is ignored. Add entries to ``scalars`` from a ``tryfirst``
    implementation to have them logged by the others.
    """


@hookspec
def gantricks_train_end(trainer: Trainer, reason: str) -> None:
    """Called once when training stops, for whatever reason.

    :param trainer: the trainer; ``trainer.step`` is the number of completed steps.
    :param reason: ``"completed"``; ``"interrupted"`` (Ctrl-C: the step in progress was
        finished, the state is clean and resumable); ``"aborted"`` (a second Ctrl-C
        stopped mid-step: do not save the state as resumable); ``"nonfinite"`` (a loss
        became NaN or infinite; the models may hold non-finite values); ``"error"``.

    The built-in checkpoint plugin runs first (``tryfirst``): the final ``last.pt`` is on
    disk before any other plugin's end work, so a failure there cannot cost it; state a
    plugin changes here is therefore not in that checkpoint.

    The return value is ignored. Save, flush and close here.
    """


@hookspec
def gantricks_state_dict(trainer: Trainer) -> dict[str, Any] | None:
    """Return this plugin's state for the checkpoint, or ``None`` for no state.

    Called when a checkpoint is written, on each plugin separately; the result is
    stored under the plugin's name. Values must be tensors, numbers, strings, lists or
    dicts of those (the checkpoint is loaded with ``weights_only=True``).

    :param trainer: the running trainer.
    """


@hookspec
def gantricks_load_state_dict(trainer: Trainer, state: dict[str, Any]) -> None:
    """Restore this plugin's state from a checkpoint, so a resumed run continues exactly.

    Called on resume, on each plugin that has state in the checkpoint, with what its
    ``gantricks_state_dict`` returned. Raise :class:`gantricks.GantricksError` if the
    state does not fit the current options.

    :param trainer: the trainer, models and optimisers already restored.
    :param state: the plugin's saved state.
    """
