"""The one place that finds, loads, blocks, configures and checks plugins.

A plugin is named on the command line as an entry-point name (built-in or installed
package, group ``"gantricks"``), a dotted module path (``mypkg.trick``) or a ``.py`` file
(``./my_trick.py``). ``no:NAME`` removes a plugin that is on by default.

A plugin module either holds ``@hookimpl`` functions, or defines a class ``Plugin``:
gantricks then makes one instance per run (``Plugin(config)`` when the class declares a
pydantic ``Config``, else ``Plugin()``) and registers the instance, so state never leaks
between runs. The plugin's options model is ``Plugin.Config`` or the module's ``Config``.
Its one-line description is the first line of its docstring.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel

from gantricks import hookspecs
from gantricks.errors import GantricksError, PluginError

ENTRY_POINT_GROUP = "gantricks"
#: Infrastructure plugins that every run loads unless removed with ``no:NAME``.
DEFAULT_PLUGINS: tuple[str, ...] = ("progress", "tensorboard", "checkpoint", "samples", "eval")
#: Default plugins that only rank 0 of a multi-process run loads (logging and saving);
#: ``eval`` runs on every rank, each sampling and scoring its share.
MAIN_RANK_PLUGINS: tuple[str, ...] = ("progress", "tensorboard", "checkpoint", "samples")


@dataclass
class LoadedPlugin:
    """A plugin after loading: where it came from, its options model and description."""

    name: str
    spec: str
    module: types.ModuleType
    factory: type | None
    config_model: type[BaseModel] | None
    description: str
    config: BaseModel | None = None
    obj: Any = field(default=None, repr=False)

    def options_help(self) -> list[tuple[str, str, str]]:
        """(name, default, description) per option."""
        if self.config_model is None:
            return []
        rows = []
        for key, info in self.config_model.model_fields.items():
            default = "required" if info.is_required() else _toml_literal(info.get_default())
            rows.append((key, default, info.description or ""))
        return rows


def available() -> dict[str, importlib.metadata.EntryPoint]:
    """Entry-point plugins installed in this environment, by name."""
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep for ep in sorted(eps, key=lambda e: e.name)}


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


def plugin_list(requested: Any) -> list[str]:
    """Plugin specs from ``--plugins`` values or the ``plugins`` option: one string or a
    list of strings, each split at commas (``"minibatch,label_smooth"``)."""
    if isinstance(requested, str):
        requested = [requested]
    if isinstance(requested, (list, tuple)) and all(isinstance(s, str) for s in requested):
        return [p.strip() for v in requested for p in v.split(",") if p.strip()]
    raise GantricksError(
        f"plugins={requested!r} is invalid: give a list of plugin names "
        '(plugins = ["minibatch", "label_smooth"]) or one comma-separated string'
    )


def resolve_specs(requested: list[str], defaults: tuple[str, ...] = DEFAULT_PLUGINS) -> list[str]:
    """Defaults plus requested plugins, minus ``no:NAME`` entries, in a stable order."""
    specs = [s.strip() for s in requested if s.strip()]
    blocked = {s[3:] for s in specs if s.startswith("no:")}
    wanted = [s for s in specs if not s.startswith("no:")]
    known = set(defaults) | set(wanted) | set(available())
    for name in sorted(blocked):
        if name not in known:
            raise GantricksError(
                f"no:{name} blocks a plugin that is not known; plugins on by default: "
                f"{', '.join(defaults)}"
            )
    out: list[str] = []
    for spec in [*defaults, *wanted]:
        if spec not in blocked and spec not in out:
            out.append(spec)
    return out


def _import_spec(spec: str) -> tuple[str, types.ModuleType | Any]:
    """Import one plugin spec; return (default name, loaded module or object)."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise GantricksError(f"plugin file {spec!r} does not exist (looked at {path})")
        mod_name = f"gantricks_local_plugin_{path.stem}_{abs(hash(str(path)))}"
        if mod_name in sys.modules:
            return path.stem, sys.modules[mod_name]
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[mod_name]
            raise GantricksError(f"plugin file {spec!r} failed to import: {e!r}") from e
        return path.stem, module
    eps = available()
    if spec in eps:
        try:
            return spec, eps[spec].load()
        except Exception as e:
            raise GantricksError(
                f"plugin {spec!r} (entry point {eps[spec].value}) failed to import: {e!r}"
            ) from e
    if "." in spec:
        try:
            return spec.rsplit(".", 1)[-1], importlib.import_module(spec)
        except ModuleNotFoundError as e:
            if e.name and spec.startswith(e.name):
                raise GantricksError(
                    f"plugin module {spec!r} cannot be imported (no module named {e.name!r}); "
                    f"installed plugins: {', '.join(eps) or 'none'}"
                ) from None
            raise GantricksError(f"plugin module {spec!r} failed to import: {e!r}") from e
    close = difflib.get_close_matches(spec, list(eps), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise GantricksError(
        f"unknown plugin {spec!r}{hint}; available plugins: {', '.join(eps) or 'none'}. "
        "A plugin can also be a file (./my_trick.py) or a module path (mypkg.trick); "
        "`gantricks plugins` lists them with their options."
    )


def load_plugin(spec: str) -> LoadedPlugin:
    """Import a plugin and read its name, options model and description (no instance yet)."""
    default_name, obj = _import_spec(spec)
    module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
    factory = getattr(obj, "Plugin", None) if isinstance(obj, types.ModuleType) else obj
    if factory is not None and not inspect.isclass(factory):
        factory = None
    config_model = getattr(factory, "Config", None) or getattr(module, "Config", None)
    if config_model is not None and not (
        inspect.isclass(config_model) and issubclass(config_model, BaseModel)
    ):
        raise GantricksError(f"plugin {spec!r}: Config must be a pydantic BaseModel subclass")
    name = getattr(module, "NAME", None) or default_name
    description = _first_line(factory if factory is not None and factory.__doc__ else module)
    return LoadedPlugin(
        name=name,
        spec=spec,
        module=module,  # type: ignore[arg-type]
        factory=factory,
        config_model=config_model,
        description=description,
    )


class PluginManager:
    """Loads plugins for one run, validates their options and registers them with pluggy."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("gantricks")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def load(
        self,
        specs: list[str],
        options: dict[str, dict[str, Any]],
        inherited: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Load, configure and register plugins; reject options for plugins not loaded.

        :param inherited: options a resumed run's checkpoint was saved with, under the
            given ``options``; those of plugins this run leaves out are dropped quietly,
            since the user did not give them.
        """
        loaded = [load_plugin(spec) for spec in specs]
        names = [p.name for p in loaded]
        for name in names:
            if names.count(name) > 1:
                raise GantricksError(f"two plugins are named {name!r}: {', '.join(specs)}")
        for key in options:
            if key in names:
                continue
            known = [*names, *(n for n in available() if n not in names)]
            if key in known:
                raise GantricksError(
                    f"options were given for plugin {key!r}, which is not enabled; enabled "
                    f"plugins: {', '.join(names)}. Add it with --plugins {key}."
                )
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise GantricksError(
                f"options were given for {key!r}, which is neither a core option nor a "
                f"plugin; plugins: {', '.join(known)}.{hint}"
            )
        if inherited:
            from gantricks.config import merge

            kept = {k: v for k, v in inherited.items() if k in names}
            options = {k: merge(kept.get(k, {}), options.get(k, {})) for k in {*kept, *options}}
        from gantricks.config import validate_plugin_options

        for plugin in loaded:
            plugin.config = validate_plugin_options(
                plugin.name, plugin.config_model, options.get(plugin.name, {})
            )
            if plugin.factory is not None:
                wants_config = plugin.config_model is not None and _accepts_argument(plugin.factory)
                plugin.obj = plugin.factory(plugin.config) if wants_config else plugin.factory()
            else:
                plugin.obj = plugin.module
            try:
                self.pm.register(plugin.obj, name=plugin.name)
            except pluggy.PluginValidationError as e:
                raise GantricksError(f"plugin {plugin.name!r} is invalid: {e}") from e
            self.plugins[plugin.name] = plugin

    def register(self, obj: Any, name: str) -> None:
        """Register an already-made plugin object (used by tests and the API)."""
        self.pm.register(obj, name=name)
        self.plugins[name] = LoadedPlugin(
            name=name,
            spec=name,
            module=inspect.getmodule(obj) or types.ModuleType(name),
            factory=None,
            config_model=None,
            description=_first_line(obj),
            obj=obj,
        )

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """Every plugin's options with defaults filled in, for config.json."""
        return {
            name: p.config.model_dump(mode="json")
            for name, p in self.plugins.items()
            if p.config is not None
        }

    def call_each(self, hook_name: str, **kwargs: Any) -> dict[str, Any]:
        """Call a hook on each plugin separately; return {plugin name: result} (non-None)."""
        out = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            args = {k: kwargs[k] for k in impl.argnames}
            try:
                result = impl.function(**args)
            except GantricksError:
                raise
            except Exception as e:
                raise PluginError(impl.plugin_name, hook_name, e) from e
            if result is not None:
                out[impl.plugin_name] = result
        return out

    def call_one(self, plugin_name: str, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook on one named plugin, if it implements it."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                args = {k: kwargs[k] for k in impl.argnames}
                try:
                    return impl.function(**args)
                except GantricksError:
                    raise
                except Exception as e:
                    raise PluginError(plugin_name, hook_name, e) from e
        return None

    def implementers(self, hook_name: str) -> list[str]:
        return [i.plugin_name for i in getattr(self.pm.hook, hook_name).get_hookimpls()]

    def blame(self, error: BaseException) -> tuple[str, str] | None:
        """(plugin, hook) whose implementation the error passed through, outermost first."""
        codes = {}
        for hook_name in hook_names():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                codes[getattr(impl.function, "__code__", None)] = (impl.plugin_name, hook_name)
        tb = error.__traceback__
        while tb is not None:
            hit = codes.get(tb.tb_frame.f_code)
            if hit is not None:
                return hit
            tb = tb.tb_next
        return None


def _toml_literal(value: Any) -> str:
    """How a default is written with --set (true, 0.9, l2sq); unset defaults as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def hook_names() -> list[str]:
    """Names of every hook declared in :mod:`gantricks.hookspecs`, in declaration order."""
    return [n for n in vars(hookspecs) if n.startswith("gantricks_")]


def _accepts_argument(factory: type) -> bool:
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 1
