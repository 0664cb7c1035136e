"""Every hook a gantricks plugin can implement, documented where it is declared.

A plugin implements a hook by defining a function (or method) with the hook's name,
decorated with :data:`gantricks.hookimpl`, taking any subset of the arguments listed
here, by name. A ``gantricks_*`` name that is not a hook below, or a hook defined
without ``@hookimpl``, stops the run before it starts with an error naming it. The order
in which plugins run for one hook is set out in :mod:`gantricks.ordering`.

The order of one run::

    gantricks_configure
    gantricks_build_models
    gantricks_train_start
    gantricks_load_state_dict              (resumed runs only)
    per step:
        gantricks_step_start
        gantricks_discriminator_targets
        gantricks_discriminator_inputs     (phase "discriminator")
        gantricks_discriminator_loss
        gantricks_after_discriminator_step
        gantricks_discriminator_inputs     (phase "generator")
        gantricks_generator_loss
        gantricks_after_generator_step
        gantricks_step_end
        gantricks_log                      (every ``log_every`` steps and at the end)
    gantricks_train_end

``gantricks_state_dict`` is called whenever a checkpoint is written, and
``gantricks_sampling_generator`` whenever samples are drawn (sample grids, evaluation, and
``gantricks sample``/``eval``/``interpolate``/``arithmetic``/``nearest`` on a checkpoint).

The *step hooks* (``gantricks_step_start`` to ``gantricks_after_generator_step``) run
inside the training step. With ``cuda_graph = true`` they run once, while the step is
captured as a CUDA graph, and afterwards only the kernels they launched are replayed: a
plugin whose step hooks do tensor work only (no Python counters or state that changes per
step, no host reads, randomness from torch's global generator) declares
``graph_safe = True``; any other plugin implementing a step hook turns the graph off, with
a warning naming it. No hook should move tensors to the host per step (``.item()``,
``.cpu()``, printing a tensor): that stalls the device. Log values with
:meth:`gantricks.Plugin.log` (tensors are read back at the next log step) or read them in
``gantricks_log``.

In a multi-process run (torchrun) every hook runs on every process, each with its share
of the batch, except in plugins that declare ``main_process_only = True`` (logging,
saving), which only rank 0 loads.

An exception raised by a hook stops the run: the checkpoint plugin saves ``last.pt``
first when the weights are finite, and the error names the plugin and the hook
(``gantricks --traceback ...`` or ``GANTRICKS_TRACEBACK=1`` shows the traceback). Raise
:class:`gantricks.GantricksError` for a problem the user can fix (a bad option, a dataset
without labels): its message is shown as it is.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal

from gantricks.markers import PROJECT, hookspec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from gantricks.config import RunConfig
    from gantricks.contract import StepBatch, TrainerAPI
    from gantricks.models import Models


@hookspec
def gantricks_configure(config: RunConfig) -> None:
    """Check or react to the resolved run configuration before anything is built.

    Called once per run, after every plugin is loaded and every option validated.

    :param config: the resolved :class:`gantricks.RunConfig` (read it; do not mutate).
        A plugin's own validated options are its ``self.config``;
        ``config.plugin_options[name]`` holds them as a dict as well.

    Raise :class:`gantricks.GantricksError` to reject a combination of options with a
    message the user can act on. The return value is ignored.
    """


@hookspec
def gantricks_build_models(models: Models, config: RunConfig) -> None:
    """Modify or wrap the generator and discriminator before optimisers are made.

    Called once per run (and when a checkpoint's models are rebuilt for sampling), after
    the models are built and initialised and before they are moved to the device and given
    to the optimisers. Mutate ``models`` in place: replace ``models.generator`` with a
    wrapper, swap layers inside it (virtual batch norm), or replace
    ``models.discriminator.head`` with a new module that adds, for example, minibatch
    features. Parameters of modules added to the players are trained by the owning
    player's optimiser; modules put in ``models.extra`` (an EMA copy of G, say) are trained
    by no optimiser. All of them are saved in checkpoints and moved to the device.

    :param models: :class:`gantricks.Models` holding ``generator`` (z -> image),
        ``discriminator`` (image -> ``(logits, features)``) and ``extra``.
    :param config: the resolved run configuration.

    The return value is ignored.
    """


@hookspec
def gantricks_train_start(trainer: TrainerAPI) -> None:
    """Called once when training is about to start (or resume), models on the device.

    :param trainer: the :class:`gantricks.Trainer`; ``models``, ``opt_g``/``opt_d``,
        ``run_dir``, ``device``, ``step`` and ``total_steps`` are ready. On resume, models,
        optimisers and ``step`` are already restored; plugin state is not yet:
        ``gantricks_load_state_dict`` follows.

    A plugin that cannot work with this run (no labels, an unsuitable layer) raises
    :class:`gantricks.GantricksError` here; a new run then gives its folder back. Plugins
    that set weights from data, or record them, follow the rules in
    :mod:`gantricks.ordering`. The return value is ignored.
    """


@hookspec
def gantricks_step_start(trainer: TrainerAPI, step: int) -> None:
    """Called at the start of every training step, before anything is computed.

    A step hook (see the module documentation on CUDA graphs).

    :param trainer: the running trainer.
    :param step: the index of the step beginning (0-based: the number of steps completed).

    The return value is ignored. Typical use: reset per-step state.
    """


@hookspec(firstresult=True)
def gantricks_discriminator_targets(
    trainer: TrainerAPI, batch: StepBatch
) -> tuple[float | torch.Tensor, float | torch.Tensor] | None:
    """Choose the discriminator's targets for real and generated images this step.

    A step hook. ``firstresult``: the first plugin that returns a value decides; returning
    ``None`` passes. When no plugin decides, the targets are ``(1.0, 0.0)``.

    :param trainer: the running trainer.
    :param batch: this step's :class:`gantricks.StepBatch` (real images, z, generated
        images; logits not yet computed).
    :return: ``(real_target, fake_target)``, each a float or a tensor broadcastable to
        the logits' shape ``(batch, 1)``, or ``None`` to pass.
    """


@hookspec
def gantricks_discriminator_inputs(
    trainer: TrainerAPI,
    inputs: dict[str, torch.Tensor],
    phase: Literal["discriminator", "generator"],
    batch: StepBatch,
) -> None:
    """Transform what the discriminator sees: instance noise, differentiable augmentation.

    A step hook, called twice per step: in the discriminator's update (``phase =
    "discriminator"``; ``inputs["real"]`` is the real batch, ``inputs["fake"]`` the
    generated batch, detached) and in the generator's update (``phase = "generator"``;
    ``inputs["fake"]`` carries gradients to G, so a transform must be differentiable, and
    ``inputs["real"]`` is the real batch the generator's update is compared with). Replace
    entries of ``inputs``; plugins run one after another, each seeing the previous one's
    tensors. The trainer then runs D on ``inputs["real"]`` and ``inputs["fake"]`` (only the
    latter in the generator's phase) and records them in ``batch`` (``d_real``/``d_fake``,
    ``gen_real``/``gen_fake``). Keep each tensor's shape; draw randomness from torch's
    global generator (it is checkpointed, and a CUDA graph replays it).

    :param trainer: the running trainer.
    :param inputs: ``{"real": ..., "fake": ...}`` images in [−1, 1] (transformed images
        may leave that range).
    :param phase: ``"discriminator"`` or ``"generator"``.
    :param batch: this step's batch.

    The return value is ignored.
    """


@hookspec
def gantricks_discriminator_loss(
    trainer: TrainerAPI, terms: dict[str, torch.Tensor], batch: StepBatch
) -> None:
    """Add, replace or remove terms of the discriminator's loss.

    A step hook, called after the discriminator has seen ``batch.d_real`` and
    ``batch.d_fake`` (separately, so each minibatch is all-real or all-generated).
    ``terms`` holds ``"real"`` and ``"fake"``: binary cross-entropy of the logits against
    the targets. The trainer minimises the sum of ``terms`` after every plugin has run and
    logs each entry as ``loss_d/<name>``.

    :param trainer: the running trainer.
    :param terms: mutable dict of named scalar loss tensors.
    :param batch: this step's :class:`gantricks.StepBatch` with ``real_logits``,
        ``real_features``, ``fake_logits``, ``fake_features`` and the targets.

    The return value is ignored.
    """


@hookspec
def gantricks_after_discriminator_step(trainer: TrainerAPI) -> None:
    """Called every step right after the discriminator's optimiser step.

    A step hook.

    :param trainer: the running trainer; ``trainer.step`` is the index of the step in
        progress (0-based, not yet counted).

    The return value is ignored. Typical use: update running averages of D's weights.
    """


@hookspec
def gantricks_generator_loss(
    trainer: TrainerAPI, terms: dict[str, torch.Tensor], batch: StepBatch
) -> None:
    """Add, replace or remove terms of the generator's loss.

    A step hook, called after the updated discriminator has seen ``batch.gen_fake`` with
    gradients to the generator: the discriminator step's generated batch, or with
    ``generator_batch = "fresh"`` one from new z. ``terms`` holds ``"adv"``: the
    non-saturating loss, binary cross-entropy of the logits against 1. The trainer
    minimises the sum and logs each entry as ``loss_g/<name>``.

    :param trainer: the running trainer.
    :param terms: mutable dict of named scalar loss tensors.
    :param batch: this step's batch; ``gen_logits`` and ``gen_features`` are the
        discriminator's outputs on ``gen_fake``; ``gen_real`` is the real batch to compare
        it with (as the discriminator would see it); ``real_features`` are from the
        discriminator's update (before it).

    The return value is ignored.
    """


@hookspec
def gantricks_after_generator_step(trainer: TrainerAPI) -> None:
    """Called every step right after the generator's optimiser step.

    A step hook.

    :param trainer: the running trainer (``trainer.step`` not yet incremented).

    The return value is ignored.
    """


@hookspec
def gantricks_step_end(trainer: TrainerAPI, step: int) -> None:
    """Called at the end of every step, outside the step (never part of a CUDA graph).

    :param trainer: the running trainer.
    :param step: the number of steps completed so far (1 after the first step).

    The return value is ignored. Keep this cheap and free of host-device syncs; do
    periodic work (sample grids, checkpoints) when ``Plugin.every(n, step)``.
    """


@hookspec
def gantricks_log(trainer: TrainerAPI, step: int, scalars: dict[str, float]) -> None:
    """Called every ``log_every`` steps (and at the end) with host-side scalars.

    Runs on every process; the loss terms are averaged over processes, values logged with
    :meth:`gantricks.Plugin.log` are each process's own.

    :param trainer: the running trainer.
    :param step: steps completed so far.
    :param scalars: name -> float: every loss term averaged over the steps since the last
        log (``loss_d/<term>``, ``loss_g/<term>``, ``loss_d``, ``loss_g``), ``img_per_s``,
        ``epoch`` and every value plugins logged since then. The same dict is written to
        ``metrics.jsonl``.

    The return value is ignored.
    """


@hookspec
def gantricks_train_end(trainer: TrainerAPI, reason: str) -> None:
    """Called once when training stops, for whatever reason.

    :param trainer: the trainer; ``trainer.step`` is the number of completed steps, and
        ``trainer.step_complete`` says whether a step was left half done.
    :param reason: ``"completed"``; ``"interrupted"`` (Ctrl-C or SIGTERM: the step in
        progress was finished, the state is clean and resumable); ``"aborted"`` (a second
        Ctrl-C stopped mid-step: do not save the state as resumable); ``"nonfinite"`` (a
        loss became NaN or infinite; the models may hold non-finite values); ``"error"``
        (an exception, in a plugin or the core).

    The built-in checkpoint plugin runs first: the final ``last.pt`` is on disk before any
    other plugin's end work, so a failure there cannot cost it; state a plugin changes here
    is therefore not in that checkpoint.

    The return value is ignored. Save, flush and close here.
    """


@hookspec(firstresult=True)
def gantricks_sampling_generator(models: Models) -> nn.Module | None:
    """Choose the generator that samples are drawn from.

    Called when a run starts and whenever a checkpoint's models are rebuilt for sampling
    (``gantricks sample``, ``eval``, ``interpolate``, ``arithmetic``, ``nearest``).
    ``firstresult``: the first plugin returning a module decides; with none, the trained
    ``models.generator`` is used. Typical use: an exponential moving average of G kept in
    ``models.extra``.

    :param models: the run's models (on the device, weights loaded).
    :return: a generator (z -> images, as :class:`gantricks.GeneratorLike`) or ``None``.
    """


@hookspec
def gantricks_state_dict(trainer: TrainerAPI) -> dict[str, Any] | None:
    """Return this plugin's state for the checkpoint, or ``None`` for no state.

    Called when a checkpoint is written, on each plugin separately; the result is stored
    under the plugin's name. Values must be tensors, numbers, strings, lists or dicts of
    those (the checkpoint is loaded with ``weights_only=True``). :class:`gantricks.Plugin`
    implements it from ``state_attributes``.

    :param trainer: the running trainer.
    """


@hookspec
def gantricks_load_state_dict(trainer: TrainerAPI, state: dict[str, Any]) -> None:
    """Restore this plugin's state from a checkpoint, so a resumed run continues exactly.

    Called on resume, right after ``gantricks_train_start``, on each plugin that has state
    in the checkpoint, with what its ``gantricks_state_dict`` returned. Raise
    :class:`gantricks.GantricksError` if the state does not fit the current options.

    :param trainer: the trainer, models and optimisers already restored.
    :param state: the plugin's saved state.
    """


#: The hooks that run inside a training step (and so inside a captured CUDA graph).
STEP_HOOKS: tuple[str, ...] = (
    "gantricks_step_start",
    "gantricks_discriminator_targets",
    "gantricks_discriminator_inputs",
    "gantricks_discriminator_loss",
    "gantricks_after_discriminator_step",
    "gantricks_generator_loss",
    "gantricks_after_generator_step",
)


def hook_names() -> list[str]:
    """Names of every hook declared here, in declaration order."""
    return [n for n, v in globals().items() if n.startswith("gantricks_") and callable(v)]


def hook_table() -> str:
    """The hooks as a Markdown table (name and arguments, kind, the first line of the
    documentation), in declaration order: the README's hook section is this output."""
    rows = ["| hook | kind | what it is for |", "|---|---|---|"]
    for name in hook_names():
        spec = globals()[name]
        args = ", ".join(inspect.signature(spec).parameters)
        kinds = []
        if name in STEP_HOOKS:
            kinds.append("step hook")
        if (getattr(spec, f"{PROJECT}_spec", None) or {}).get("firstresult"):
            kinds.append("first result")
        doc = inspect.getdoc(spec).splitlines()[0]
        rows.append(f"| `{name}({args})` | {', '.join(kinds)} | {doc} |")
    return "\n".join(rows) + "\n"
