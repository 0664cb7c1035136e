"""``gantricks plugins``: what is installed, with descriptions and options."""

from __future__ import annotations

import argparse
from typing import Any

from gantricks.errors import GantricksError
from gantricks.hookspecs import hook_table
from gantricks.plugin_manager import DEFAULT_PLUGINS, available, load_plugin
from gantricks.train.cuda_graph import graph_safety


def add_command(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list available plugins and their options")
    p.add_argument(
        "--hooks",
        action="store_true",
        help="list the hooks a plugin can implement (a Markdown table) instead",
    )
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.hooks:
        print(hook_table(), end="")
        return 0
    for name, ep in available().items():
        try:
            plugin = load_plugin(name)
        except GantricksError as e:
            print(f"{name}  [failed to load: {e}]")
            continue
        tag = " (on by default; no:" + name + " removes it)" if name in DEFAULT_PLUGINS else ""
        print(f"{name}{tag}\n    {plugin.description}\n    from {ep.value}")
        safe = graph_safety(plugin.factory or plugin.module)
        if safe is not None:
            graph = "its step hooks are replayed" if safe else "turns it off (not graph_safe)"
            print(f"    cuda_graph: {graph}")
        for key, default, desc in plugin.options_help():
            print(f"    --set {name}.{key}={default}" + (f"  {desc}" if desc else ""))
    print("\nAlso accepted by --plugins: a module path (mypkg.trick) or a file (./my_trick.py).")
    return 0
