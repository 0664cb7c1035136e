"""Assemble a run from options: config, plugins, data, run folder; or resume one.

Precedence, lowest first: defaults < the checkpoint's config (when resuming) < the TOML
file < ``--set`` < explicit command-line flags.
"""

from __future__ import annotations

import difflib
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from gantricks import checkpoint
from gantricks.config import RunConfig, merge, validate_core
from gantricks.data import NATIVE_SIZE, load_dataset
from gantricks.errors import GantricksError
from gantricks.models import Models, build_models
from gantricks.plugin_manager import (
    DEFAULT_PLUGINS,
    MAIN_RANK_PLUGINS,
    PluginManager,
    available,
    load_plugin,
    plugin_list,
    resolve_specs,
)
from gantricks.trainer import Trainer, release_unused_run_dir, resolve_device

_CORE_KEYS = set(RunConfig.model_fields) - {"plugin_options"}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Separate core options from per-plugin option tables."""
    core: dict[str, Any] = {}
    plugin: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key in _CORE_KEYS or not isinstance(value, dict):
            core[key] = value
        elif key == "plugin_options":
            for name, opts in value.items():
                plugin[name] = merge(plugin.get(name, {}), opts)
        else:
            plugin[key] = merge(plugin.get(key, {}), value)
    return core, plugin


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The run folder that holds a checkpoint file."""
    p = Path(ckpt_path).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def _new_run_dir(config: RunConfig) -> tuple[Path, bool]:
    """An absent or empty folder for a new run, claimed by creating its ``config.json``;
    also whether the folder was made here (rather than found empty: then a refused run
    leaves the folder, which may be the user's or another claim's).

    The claim is an exclusive create, so runs started at once (a shell loop over seeds, all
    named by the same second's timestamp) get ``NAME``, ``NAME-2``, ... instead of sharing
    one folder; the file is overwritten with the run's configuration once it is resolved.
    """
    name = config.name or f"{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    base = Path(config.out_dir) / name
    path, k = base, 2
    while True:
        try:
            path.mkdir(parents=True)
            made = True
        except FileExistsError:
            made = False
        try:
            if made or not any(path.iterdir()):
                (path / "config.json").open("x").close()
                return path, made
        except FileExistsError:  # another run claimed it just now
            pass
        except FileNotFoundError:  # a refused run gave the folder back just now: try again
            continue
        path, k = base.with_name(f"{base.name}-{k}"), k + 1


def load_plugins(specs: list[str], options: dict[str, dict[str, Any]]) -> PluginManager:
    """A plugin manager with exactly these (already resolved) plugins loaded."""
    pm = PluginManager()
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
    from gantricks import distributed

    rank = distributed.init_from_env(str(options.get("device", "auto")))
    ckpt = None
    base: dict[str, Any] = {}
    if resume is not None:
        ckpt = checkpoint.load(resume)
        base = dict(ckpt["config"])
        base.pop("name", None)
        # A length given now replaces the checkpoint's, in whichever unit it was given.
        if options.get("steps") is not None or options.get("epochs") is not None:
            base.pop("steps", None)
            base.pop("epochs", None)
    base_core, inherited = split_options(base)
    core, plugin_opts = split_options(options)
    core = merge(base_core, core)
    requested = plugins if plugins is not None else options.get("plugins")
    saved = list(base.get("plugins", []))  # saved already resolved (defaults, no:NAME)
    if requested is not None:
        requested = plugin_list(requested)
    if ckpt is not None and (requested is None or _only_removals(requested)):
        specs = _without(saved, requested or [], ckpt["path"])
    else:
        specs = resolve_specs(requested or [])
    core["plugins"] = specs
    config = validate_core(core)
    if ckpt is not None and ckpt["config"].get("dataset", config.dataset) != config.dataset:
        raise GantricksError(
            f"checkpoint {ckpt['path']!r} was trained on dataset {ckpt['config']['dataset']!r}; "
            f"this run asks for {config.dataset!r}. A resumed run keeps its dataset: leave "
            "--dataset out, or start a new run."
        )

    if not rank.is_main:
        # Logging, samples and checkpoints happen on rank 0 only (evaluation is sharded).
        specs = [s for s in specs if s not in MAIN_RANK_PLUGINS]
        plugin_opts = {k: v for k, v in plugin_opts.items() if k not in MAIN_RANK_PLUGINS}
    pm = PluginManager()
    try:
        pm.load(specs, plugin_opts, inherited=inherited)
    except GantricksError as e:
        if ckpt is None or requested is None:
            raise
        raise GantricksError(
            f"{e} With --resume, --plugins gives the whole list again (or only no:NAME "
            f"entries, which remove plugins from it); the checkpoint's is {','.join(saved)}."
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
    made = False  # whether this run made its folder (a new run's: see _new_run_dir)
    if ckpt is not None:
        if (ckpt.get("image_size"), ckpt.get("channels")) != (data.image_size, data.channels):
            raise GantricksError(
                f"checkpoint {ckpt['path']!r} was trained on {ckpt.get('channels')}-channel "
                f"{ckpt.get('image_size')}px images; this run's data is {data.channels}-channel "
                f"{data.image_size}px ({config.dataset})"
            )
        run_dir = run_dir_of(ckpt["path"])
        latest = run_dir / "checkpoints" / "last.pt"
        if rank.is_main and latest.is_file() and Path(ckpt["path"]).resolve() != latest.resolve():
            warnings.warn(
                f"resuming {run_dir} from {Path(ckpt['path']).name} (step {ckpt['step']}), "
                f"not from its last.pt: metrics logged after step {ckpt['step']} are dropped "
                "and last.pt is replaced at the next save. Copy the run folder first to keep "
                "both branches.",
                stacklevel=2,
            )
    else:
        run_dir, made = _new_run_dir(config) if rank.is_main else (None, False)
        if rank.enabled:
            run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir)))
    assert run_dir is not None
    config.name = run_dir.name
    if rank.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(config, pm, data, run_dir)
        if rank.is_main and ckpt is None:
            trainer.write_config()  # a resumed run's, once its checkpoint has loaded (fit)
    except BaseException:  # refused while building (gantricks_configure, a plugin's models)
        if rank.is_main and ckpt is None:
            release_unused_run_dir(run_dir, remove_folder=made)
        raise
    if rank.is_main and ckpt is None:
        trainer.new_run_dir = "made" if made else "found"
    return trainer, ckpt


def _only_removals(specs: list[str]) -> bool:
    return bool(specs) and all(s.startswith("no:") for s in specs)


def _without(saved: list[str], removals: list[str], path: str) -> list[str]:
    """A resumed run's plugins: the checkpoint's, minus ``no:NAME`` entries.

    A plugin is named by its spec or by the name it registers under (``mytrick`` for
    ``./mytrick.py``, or the file's ``NAME``), as ``gantricks train`` prints it. Removing a
    known plugin the run does not have is harmless (the command that started the run may be
    typed again); an unknown name is refused.
    """
    blocked = {s[3:] for s in removals}
    names = {spec: {spec, _registered_name(spec)} for spec in saved}
    known = set().union(*names.values(), DEFAULT_PLUGINS, available())
    unknown = sorted(blocked - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean no:{close[0]}?)" if close else ""
        raise GantricksError(
            f"no:{unknown[0]} removes a plugin that is not known{hint}; checkpoint {path!r} "
            f"was trained with {', '.join(saved)}"
        )
    return [spec for spec in saved if not names[spec] & blocked]


def _registered_name(spec: str) -> str:
    try:
        return load_plugin(spec).name
    except GantricksError:  # gone from this environment: loading it reports that later
        return spec


def load_models(
    ckpt_or_run: str | Path, device: str = "auto"
) -> tuple[Models, RunConfig, dict[str, Any]]:
    """Rebuild a checkpoint's models (with its model-changing plugins) for sampling.

    Only ``gantricks_configure`` and ``gantricks_build_models`` run; no run folder,
    logger or data is touched.
    """
    ckpt = checkpoint.load(ckpt_or_run)
    config = validate_core({k: v for k, v in ckpt["config"].items() if k != "plugin_options"})
    pm = load_plugins(config.plugins, ckpt["config"].get("plugin_options", {}))
    pm.hook.gantricks_configure(config=config)
    torch.manual_seed(config.seed)
    models = build_models(config.nz, ckpt["channels"], ckpt["image_size"], config.ngf, config.ndf)
    pm.hook.gantricks_build_models(models=models, config=config)
    path = ckpt["path"]
    checkpoint.load_module_state(models.generator, ckpt["generator"], "generator", path)
    checkpoint.load_module_state(models.discriminator, ckpt["discriminator"], "discriminator", path)
    models.to(resolve_device(device))
    return models, config, ckpt
