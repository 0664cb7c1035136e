"""A run's options: core keys and plugin tables apart, and the plugin list of a new or a
resumed run.

Precedence, lowest first: defaults < the checkpoint's config (when resuming) < the TOML
file < ``--set`` < explicit command-line flags.
"""

from __future__ import annotations

import difflib
from typing import Any

from gantricks.config import RunConfig, merge
from gantricks.errors import GantricksError
from gantricks.plugin_manager import DEFAULT_PLUGINS, available, load_plugin, resolve_specs

CORE_KEYS = set(RunConfig.model_fields) - {"plugin_options"}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Separate core options from per-plugin option tables."""
    core: dict[str, Any] = {}
    plugin: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key in CORE_KEYS or not isinstance(value, dict):
            core[key] = value
        elif key == "plugin_options":
            for name, opts in value.items():
                plugin[name] = merge(plugin.get(name, {}), opts)
        else:
            plugin[key] = merge(plugin.get(key, {}), value)
    return core, plugin


def run_plugins(requested: list[str] | None, saved: list[str] | None, path: str = "") -> list[str]:
    """The resolved plugin list of a run.

    A new run (``saved`` is ``None``): the defaults plus ``requested``, minus ``no:NAME``.
    A resumed run keeps the checkpoint's list (``saved``) when nothing is requested or only
    ``no:NAME`` entries, which remove plugins from it; any other list replaces it.
    """
    if saved is not None and (requested is None or _only_removals(requested)):
        return _without(saved, requested or [], path)
    return resolve_specs(requested or [])


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
