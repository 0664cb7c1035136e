"""Assemble a run from options: config, plugins, data, run folder, trainer; or resume one.

:func:`prepare` is the whole life cycle before the loop, in order: options merged over a
resumed checkpoint's, the plugin list, validation, plugins loaded, the device checked,
data loaded, the folder claimed (or the checkpoint's found), the trainer built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gantricks import distributed, files
from gantricks.config import RunConfig, merge, validate_core
from gantricks.data import NATIVE_SIZE, load_dataset
from gantricks.device import resolve_device
from gantricks.errors import GantricksError, PluginError
from gantricks.models import Models, build_models, model_spec
from gantricks.plugin_manager import PluginManager, plugin_list
from gantricks.run import folder
from gantricks.run import resume as resumed
from gantricks.run.options import run_plugins, split_options
from gantricks.train.data_init import NAME as DATA_INIT
from gantricks.train.data_init import DataDependentInit
from gantricks.train.loop import Trainer
from gantricks.train.precision import check_bf16
from gantricks.train.state import load_models_state


def load_plugins(
    specs: list[str], options: dict[str, dict[str, Any]], is_main: bool = True
) -> PluginManager:
    """A plugin manager with exactly these (already resolved) plugins loaded."""
    pm = PluginManager(is_main)
    pm.load(specs, options)
    return pm


def prepare(
    options: dict[str, Any],
    plugins: list[str] | None = None,
    resume: str | Path | None = None,
    extra_plugins: list[tuple[Any, str]] | None = None,
) -> tuple[Trainer, dict[str, Any] | None]:
    """A ready trainer (and the checkpoint to resume from, if any).

    :param options: core options and plugin option tables, already merged from file,
        ``--set`` and flags.
    :param plugins: requested plugin specs (defaults are added; ``no:NAME`` removes one).
        ``None`` keeps the checkpoint's plugins when resuming, else only the defaults.
    :param resume: a run folder or checkpoint file to continue.
    :param extra_plugins: already-made plugin objects and names to register (API/tests).
    """
    rank = distributed.init_from_env(str(options.get("device", "auto")))
    ckpt, base = resumed.load(resume, options) if resume is not None else (None, {})
    base_core, inherited = split_options(base)
    core, plugin_opts = split_options(options)
    core = merge(base_core, core)
    requested = plugins if plugins is not None else options.get("plugins")
    requested = plugin_list(requested) if requested is not None else None
    saved = list(base.get("plugins", [])) if ckpt is not None else None
    core["plugins"] = run_plugins(requested, saved, ckpt["path"] if ckpt else "")
    config = validate_core(core)
    model_spec(config.model)  # an unknown model fails before anything loads
    if ckpt is not None:
        resumed.check_dataset(ckpt, config)

    pm = PluginManager(is_main=rank.is_main)
    # Before every plugin, as trylast: the first trylast implementation called.
    pm.pm.register(DataDependentInit(), name=DATA_INIT)
    try:
        pm.load(config.plugins, plugin_opts, inherited=inherited)
    except GantricksError as e:
        if ckpt is None or requested is None:
            raise
        raise GantricksError(
            f"{e} With --resume, --plugins gives the whole list again (or only no:NAME "
            f"entries, which remove plugins from it); the checkpoint's is {','.join(saved or [])}."
        ) from None
    for obj, name in extra_plugins or []:
        pm.register(obj, name)
    resolve_device(config.device, rank.local_rank)  # a missing GPU fails before any folder
    if config.image_size is None:
        config.image_size = NATIVE_SIZE[config.dataset]
    config.plugin_options = pm.resolved_options()

    data = distributed.main_first(  # rank 0 downloads a missing dataset first
        lambda: load_dataset(
            config.dataset, config.data_dir, config.image_size, train=True, download=config.download
        ),
        "load the dataset",
    )
    made = False  # whether this run made its folder (a new run's)
    if ckpt is not None:
        resumed.check_images(ckpt, data, config)
        run_dir: Path | None = resumed.run_dir(ckpt, warn=rank.is_main)
        if rank.is_main:
            resumed.remove_stale_temps(run_dir)
    else:
        run_dir, made = folder.claim_new_run_dir(config) if rank.is_main else (None, False)
        if rank.enabled:
            run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir)))
    assert run_dir is not None
    config.name = run_dir.name
    if rank.is_main:
        files.make_dirs(run_dir)
    new = rank.is_main and ckpt is None
    try:
        trainer = Trainer(config, pm, data, run_dir)
        if new:
            trainer.write_config()  # a resumed run's, once its checkpoint has loaded (fit)
        if rank.is_main:
            check_bf16(trainer)  # CPU and bf16 only: warns when bf16 is the slower here
    except BaseException as e:  # refused while building (configure, a plugin's models)
        if new:
            folder.release_unused_run_dir(run_dir, remove_folder=made)
        culprit = None if isinstance(e, GantricksError) else pm.blame(e)
        if culprit is not None:
            raise PluginError(*culprit, e) from e
        raise
    if new:
        trainer.release_folder = lambda: folder.release_unused_run_dir(run_dir, made)
    return trainer, ckpt


def load_models(
    ckpt_or_run: str | Path, device: str = "auto"
) -> tuple[Models, RunConfig, dict[str, Any]]:
    """Rebuild a checkpoint's models (with its model-changing plugins) for sampling.

    Only ``gantricks_configure`` and ``gantricks_build_models`` run; no run folder,
    logger or data is touched. ``models.sampling_generator`` is the generator to sample
    from (``gantricks_sampling_generator``).
    """
    from gantricks import checkpoint

    ckpt = checkpoint.load(ckpt_or_run)
    config = validate_core({k: v for k, v in ckpt["config"].items() if k != "plugin_options"})
    pm = load_plugins(config.plugins, ckpt["config"].get("plugin_options", {}))
    pm.hook.gantricks_configure(config=config)
    torch.manual_seed(config.seed)
    models = build_models(
        config.nz, ckpt["channels"], ckpt["image_size"], config.ngf, config.ndf, config.model
    )
    pm.hook.gantricks_build_models(models=models, config=config)
    load_models_state(models, ckpt)
    models.to(resolve_device(device))
    models.for_sampling = pm.hook.gantricks_sampling_generator(models=models)
    return models, config, ckpt
