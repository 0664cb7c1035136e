"""Finding and importing plugins: entry points, module paths and files, and the list a
run loads (the defaults plus what was asked for, minus ``no:NAME``)."""

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

from pydantic import BaseModel

from gantricks.errors import GantricksError
from gantricks.plugin import Plugin

ENTRY_POINT_GROUP = "gantricks"
#: The infrastructure plugins every run loads unless removed with ``no:NAME``, in the order
#: they are registered (as pytest's core lists its default plugins). The core calls none
#: of them by name; they are ordinary entry-point plugins.
DEFAULT_PLUGINS: tuple[str, ...] = ("progress", "tensorboard", "checkpoint", "samples", "eval")


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

    @property
    def target(self) -> Any:
        """What holds the hooks: the class, or the module of hook functions."""
        return self.factory if self.factory is not None else self.module

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


def first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


def is_file_spec(spec: str) -> bool:
    """Whether a plugin spec names a file (``./trick.py``) rather than a name or module."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def plugin_list(requested: Any) -> list[str]:
    """Plugin specs from ``--plugins`` values or the ``plugins`` option: one string or a
    list of strings, each split at commas (``"minibatch,label_smooth"``); file plugins
    become absolute paths."""
    if isinstance(requested, str):
        requested = [requested]
    if isinstance(requested, (list, tuple)) and all(isinstance(s, str) for s in requested):
        specs = [p.strip() for v in requested for p in v.split(",") if p.strip()]
        return [str(Path(s).expanduser().resolve()) if is_file_spec(s) else s for s in specs]
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
    if is_file_spec(spec):
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


def _plugin_class(module: types.ModuleType, spec: str) -> type | None:
    """The class a plugin module defines: its ``Plugin`` attribute, else its one
    :class:`gantricks.Plugin` subclass; ``None`` for a module of hook functions."""
    named = getattr(module, "Plugin", None)
    if inspect.isclass(named) and named is not Plugin:
        return named
    own = [
        v
        for v in vars(module).values()
        if inspect.isclass(v)
        and issubclass(v, Plugin)
        and v is not Plugin
        and v.__module__ == module.__name__
    ]
    if len(own) > 1:
        names = ", ".join(sorted(c.__name__ for c in own))
        raise GantricksError(
            f"plugin {spec!r} defines several Plugin classes ({names}); a plugin module "
            "defines one (or names the one to load `Plugin`)"
        )
    return own[0] if own else None


def load_plugin(spec: str) -> LoadedPlugin:
    """Import a plugin and read its name, options model and description (no instance yet)."""
    default_name, obj = _import_spec(spec)
    if isinstance(obj, types.ModuleType):
        module, factory = obj, _plugin_class(obj, spec)
    else:
        module, factory = inspect.getmodule(obj), obj if inspect.isclass(obj) else None
    config_model = getattr(factory, "Config", None) or getattr(module, "Config", None)
    if config_model is not None and not (
        inspect.isclass(config_model) and issubclass(config_model, BaseModel)
    ):
        raise GantricksError(f"plugin {spec!r}: Config must be a pydantic BaseModel subclass")
    name = getattr(module, "NAME", None) or default_name
    description = first_line(factory if factory is not None and factory.__doc__ else module)
    return LoadedPlugin(
        name=name,
        spec=spec,
        module=module,  # type: ignore[arg-type]
        factory=factory,
        config_model=config_model,
        description=description,
    )


def _toml_literal(value: Any) -> str:
    """How a default is written with --set (true, 0.9, l2sq); unset defaults as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
