"""What a checkpoint holds, and how a resumed run takes it back exactly.

Both players (and ``models.extra``), both optimisers, the step, every random stream (the
latent noise, torch's global generators, the data order), the configuration and every
plugin's state. On a CPU, N steps plus N resumed steps give the weights of 2N steps in one
go, bit for bit. torch's global generators are restored last, after every plugin's
``gantricks_train_start`` and state: whatever set-up draws (a network made randomly before
its weights load) does not shift the stream training continues with.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Protocol

import torch

from gantricks import checkpoint
from gantricks.contract import TrainerAPI
from gantricks.errors import GantricksError
from gantricks.train.optim import adam_settings

if TYPE_CHECKING:
    from gantricks.data import BatchSampler
    from gantricks.plugin_manager import PluginManager


class Trainer(TrainerAPI, Protocol):
    """The parts of the trainer a checkpoint holds or restores."""

    plugins: PluginManager
    sampler: BatchSampler
    gen_sampler: BatchSampler | None
    noise: torch.Generator
    graph_wanted: bool


def state_dict(t: Trainer) -> dict[str, Any]:
    """Everything a resumed run needs to continue exactly."""
    return {
        "step": t.step,
        "config": t.config.model_dump(mode="json"),
        "generator": t.models.generator.state_dict(),
        "discriminator": t.models.discriminator.state_dict(),
        "extra": t.models.extra.state_dict(),
        "opt_g": t.opt_g.state_dict(),
        "opt_d": t.opt_d.state_dict(),
        "sampler": t.sampler.state_dict(),
        "gen_sampler": t.gen_sampler.state_dict() if t.gen_sampler else None,
        "noise": t.noise.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "plugins": t.plugins.call_each("gantricks_state_dict", trainer=t),
        "image_size": t.data.image_size,
        "channels": t.data.channels,
    }


def load_models_state(models: Any, ckpt: dict[str, Any]) -> None:
    """Both players' and ``extra``'s weights; an architecture mismatch is a clear error."""
    path = ckpt.get("path", "checkpoint")
    checkpoint.load_module_state(models.generator, ckpt["generator"], "generator", path)
    checkpoint.load_module_state(models.discriminator, ckpt["discriminator"], "discriminator", path)
    extra = ckpt.get("extra", {})  # absent in checkpoints from before models.extra
    if extra or len(models.extra):
        checkpoint.load_module_state(models.extra, extra, "models.extra (plugin modules)", path)


def load_core_state(t: Trainer, ckpt: dict[str, Any]) -> None:
    """Restore models, optimisers, data order, RNGs and step from a checkpoint."""
    path = ckpt.get("path", "checkpoint")
    try:
        load_models_state(t.models, ckpt)
    except GantricksError as e:
        raise GantricksError(_plugins_that_change_the_model(t, ckpt) or str(e)) from None
    try:
        t.opt_g.load_state_dict(ckpt["opt_g"])
        t.opt_d.load_state_dict(ckpt["opt_d"])
    except (ValueError, KeyError) as e:
        raise GantricksError(
            f"checkpoint {path!r}: optimiser state does not fit this run: {e}"
        ) from None
    # The optimisers follow this run's configuration (e.g. --set adam_eps=... on
    # --resume), not the hyperparameters stored with their state.
    for opt, lr in ((t.opt_g, t.config.lr_g), (t.opt_d, t.config.lr_d)):
        for group in opt.param_groups:
            group.update(adam_settings(t.config, lr, t.graph_wanted))
    sampler_state = dict(ckpt["sampler"])
    if "global_batch" not in sampler_state:  # older checkpoints: from their config
        saved_batch = ckpt.get("config", {}).get("batch_size")
        if saved_batch is not None:
            sampler_state["global_batch"] = int(saved_batch) * t.dist.world_size
    t.sampler.load_state_dict(sampler_state, "the training images")
    # A run switched to generator_batch=fresh on resume starts its second shuffle anew.
    if t.gen_sampler is not None and ckpt.get("gen_sampler") is not None:
        t.gen_sampler.load_state_dict(ckpt["gen_sampler"], "the generator's real batches")
    t.step = int(ckpt["step"])
    _restore_noise(t, ckpt["noise"], path)
    restore_global_rng(ckpt)


def restore_global_rng(ckpt: dict[str, Any]) -> None:
    """torch's global CPU (and CUDA) generators as the checkpoint saved them."""
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])


def _plugins_that_change_the_model(t: Trainer, ckpt: dict[str, Any]) -> str | None:
    """When the players do not load: the plugins that change the model (they implement
    ``gantricks_build_models``) that the checkpoint's run had and this one lacks, or the
    other way round, named with the fix; ``None`` when the plugins are not the reason."""
    from gantricks.plugin_specs import load_plugin

    def changes_model(spec: str) -> bool:
        try:
            loaded = load_plugin(spec)
        except GantricksError:
            return True  # cannot tell: name it
        return hasattr(loaded.factory or loaded.module, "gantricks_build_models")

    saved = [str(p) for p in ckpt.get("config", {}).get("plugins", [])]
    missing = [p for p in saved if p not in t.config.plugins and changes_model(p)]
    added = [p for p in t.config.plugins if p not in saved and changes_model(p)]
    if not (missing or added):
        return None
    path = ckpt.get("path", "checkpoint")
    parts = []
    if missing:
        parts.append(
            f"checkpoint {path!r} was trained with plugin {', '.join(missing)}, which changes "
            f"the model, and this run's plugins ({', '.join(t.config.plugins)}) leave it out: "
            f"add {','.join(missing)} to --plugins, or leave --plugins out to keep the "
            f"checkpoint's list ({','.join(saved)})"
        )
    if added:
        parts.append(
            f"this run adds plugin {', '.join(added)}, which changes the model and was not in "
            f"the run that saved checkpoint {path!r}: take {','.join(added)} out of --plugins "
            "(a trick that changes the model needs a new run)"
        )
    return "; ".join(parts)


def _restore_noise(t: Trainer, state: torch.Tensor, path: str) -> None:
    """The z generator's state; a checkpoint written on another device type (a CPU run
    continued on a GPU) holds another kind of generator's state (CPU and CUDA states differ
    in size), which cannot be loaded: z then comes from a stream seeded by the seed and
    step, and the continuation is statistically, not bitwise, the run it continues. A state
    of the right kind that fails to load is still an error."""
    if state.numel() == t.noise.get_state().numel():
        t.noise.set_state(state)
    else:
        t.noise.manual_seed(t.config.seed + 2 + t.step)
        warnings.warn(
            f"checkpoint {path!r} was written on another device type than "
            f"{t.device.type}: the latent noise continues from a new seeded stream "
            "(seed + 2 + step), so this resume is not bit-identical to an "
            "uninterrupted run",
            stacklevel=3,
        )


def load_plugin_state(t: Trainer, ckpt: dict[str, Any]) -> None:
    """Give each plugin its saved state; a plugin with state on only one side is an error."""
    path = ckpt.get("path", "checkpoint")
    saved = ckpt.get("plugins", {})
    enabled = set(t.plugins.plugins)
    # Ranks other than 0 run without the plugins that declare main_process_only.
    unknown = sorted(set(saved) - enabled - t.plugins.skipped)
    if unknown:
        raise GantricksError(
            f"checkpoint {path!r} holds state of plugin(s) {', '.join(unknown)}, which "
            f"are not enabled in this run; enable them with --plugins {','.join(unknown)}"
        )
    stateful = set(t.plugins.implementers("gantricks_state_dict"))
    missing = sorted(
        n for n in stateful - set(saved) if t.plugins.call_one(n, "gantricks_state_dict", trainer=t)
    )
    if missing:
        raise GantricksError(
            f"checkpoint {path!r} has no state for plugin(s) {', '.join(missing)}: they "
            "were not enabled when it was saved, so the run cannot continue exactly. "
            "Resume without them or start a new run."
        )
    for name, state in saved.items():
        if name in enabled:
            t.plugins.call_one(name, "gantricks_load_state_dict", trainer=t, state=state)
    restore_global_rng(ckpt)  # again: set-up since load_core_state may have drawn
