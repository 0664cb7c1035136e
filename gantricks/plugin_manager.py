"""The one place that finds, loads, blocks, configures and checks plugins.

A plugin is named on the command line as an entry-point name (built-in or installed
package, group ``"gantricks"``), a dotted module path (``mypkg.trick``) or a ``.py`` file
(``./my_trick.py``, stored as an absolute path so a run resumes from any folder).
``no:NAME`` removes a plugin that is on by default.

A plugin module either holds ``@hookimpl`` functions, or defines a plugin class: a
subclass of :class:`gantricks.Plugin` (or any class named ``Plugin``). gantricks then makes
one instance per run with its validated options and registers the instance, so state never
leaks between runs. The options model is the class's ``Config`` or the module's
``Config``; the one-line description is the first line of the class's (or module's)
docstring. Every ``gantricks_*`` name a plugin defines must be a hook and be marked
``@hookimpl``: anything else stops the run before it starts, with the closest hook name.
"""

from __future__ import annotations

import difflib
import inspect
import types
from typing import Any

import pluggy
import torch

from gantricks import hookspecs
from gantricks.config import merge, validate_plugin_options
from gantricks.errors import GantricksError, PluginError
from gantricks.markers import PROJECT
from gantricks.plugin import Plugin
from gantricks.plugin_specs import (
    DEFAULT_PLUGINS,
    LoadedPlugin,
    available,
    first_line,
    load_plugin,
    plugin_list,
    resolve_specs,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "LoadedPlugin",
    "PluginManager",
    "available",
    "check_hook_names",
    "load_plugin",
    "plugin_list",
    "resolve_specs",
]


def check_hook_names(obj: Any, name: str) -> None:
    """Every ``gantricks_*`` callable of a plugin is a declared hook marked ``@hookimpl``:
    a misspelt hook would otherwise never be called, silently."""
    hooks = hookspecs.hook_names()
    for attr in dir(obj):
        if not attr.startswith("gantricks_"):
            continue
        value = getattr(obj, attr, None)
        if not callable(value):
            continue
        if attr not in hooks:
            close = difflib.get_close_matches(attr, hooks, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise GantricksError(
                f"plugin {name!r} defines {attr}, which is not a gantricks hook{hint} "
                "(the hooks are listed in gantricks/hookspecs.py and the README)"
            )
        if getattr(value, f"{PROJECT}_impl", None) is None:
            raise GantricksError(
                f"plugin {name!r} defines {attr} without @hookimpl, so it would never be "
                "called; decorate it with @gantricks.hookimpl"
            )


class PluginManager:
    """Loads plugins for one run, validates their options and registers them with pluggy.

    :param is_main: whether this is the main process (rank 0); elsewhere plugins that
        declare ``main_process_only`` are left out (they are listed in ``skipped``).
    """

    def __init__(self, is_main: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}
        self.is_main = is_main
        self.skipped: set[str] = set()

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
            kept = {k: v for k, v in inherited.items() if k in names}
            options = {k: merge(kept.get(k, {}), options.get(k, {})) for k in {*kept, *options}}
        for plugin in loaded:
            if not self.is_main and getattr(plugin.target, "main_process_only", False):
                self.skipped.add(plugin.name)
                continue
            plugin.config = validate_plugin_options(
                plugin.name, plugin.config_model, options.get(plugin.name, {})
            )
            plugin.obj = self._instance(plugin)
            self._register(plugin.obj, plugin.name)
            self.plugins[plugin.name] = plugin
        self.pm.check_pending()

    @staticmethod
    def _instance(plugin: LoadedPlugin) -> Any:
        factory = plugin.factory
        if factory is None:
            return plugin.module
        is_base = issubclass(factory, Plugin)
        takes_config = (plugin.config_model is not None or is_base) and _accepts_argument(factory)
        obj = factory(plugin.config) if takes_config else factory()
        if is_base and plugin.config is not None:
            obj.config = plugin.config  # also when a subclass's __init__ takes no options
        return obj

    def _register(self, obj: Any, name: str) -> None:
        check_hook_names(obj, name)
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as e:
            raise GantricksError(f"plugin {name!r} is invalid: {e}") from e

    def register(self, obj: Any, name: str) -> None:
        """Register an already-made plugin object (used by tests and the API)."""
        self._register(obj, name)
        self.plugins[name] = LoadedPlugin(
            name=name,
            spec=name,
            module=inspect.getmodule(obj) or types.ModuleType(name),
            factory=None,
            config_model=None,
            description=first_line(obj),
            obj=obj,
        )

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """Every plugin's options with defaults filled in, for config.json."""
        return {
            name: p.config.model_dump(mode="json")
            for name, p in self.plugins.items()
            if p.config is not None
        }

    def take_logged(self) -> dict[str, float]:
        """Scalars plugins logged with :meth:`gantricks.Plugin.log` since the last call, as
        floats (tensors are read back together, in one transfer)."""
        logged: dict[str, float | torch.Tensor] = {}
        for p in self.plugins.values():
            if isinstance(p.obj, Plugin):
                logged.update(p.obj.take_logged())
        tensors = [k for k, v in logged.items() if isinstance(v, torch.Tensor)]
        if tensors:
            values = torch.stack([logged[k].detach().float().reshape(()).cpu() for k in tensors])
            logged.update(zip(tensors, values.tolist(), strict=True))
        return {k: float(v) for k, v in logged.items()}

    def call_each(self, hook_name: str, **kwargs: Any) -> dict[str, Any]:
        """Call a hook on each plugin separately; return {plugin name: result} (non-None)."""
        out = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            result = self._call(impl, hook_name, kwargs)
            if result is not None:
                out[impl.plugin_name] = result
        return out

    def call_one(self, plugin_name: str, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook on one named plugin, if it implements it."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return self._call(impl, hook_name, kwargs)
        return None

    @staticmethod
    def _call(impl: Any, hook_name: str, kwargs: dict[str, Any]) -> Any:
        args = {k: kwargs[k] for k in impl.argnames}
        try:
            return impl.function(**args)
        except GantricksError:
            raise
        except Exception as e:
            raise PluginError(impl.plugin_name, hook_name, e) from e

    def implementers(self, hook_name: str) -> list[str]:
        """Plugins implementing a hook, in the order pluggy calls them (it keeps them in
        reverse; see :mod:`gantricks.ordering`)."""
        return [i.plugin_name for i in reversed(getattr(self.pm.hook, hook_name).get_hookimpls())]

    def blame(self, error: BaseException) -> tuple[str, str] | None:
        """(plugin, hook) whose implementation the error passed through, outermost first."""
        # Methods inherited from gantricks.Plugin share their code: the frame's ``self``
        # tells which plugin's it was.
        codes: dict[Any, list[tuple[Any, str, str]]] = {}
        for hook_name in hookspecs.hook_names():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                code = getattr(impl.function, "__code__", None)
                codes.setdefault(code, []).append((impl.plugin, impl.plugin_name, hook_name))
        tb = error.__traceback__
        while tb is not None:
            hits = codes.get(tb.tb_frame.f_code)
            if hits:
                owner = tb.tb_frame.f_locals.get("self")
                _, plugin, hook = next((h for h in hits if h[0] is owner), hits[0])
                return plugin, hook
            tb = tb.tb_next
        return None


def _accepts_argument(factory: type) -> bool:
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 1
