"""Trick combinations: from ``--combos`` text, a TOML combo file, or the leave-one-out set."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gantricks.config import load_toml
from gantricks.errors import GantricksError

TRICKS = (
    "feature_matching",
    "minibatch",
    "historical_averaging",
    "label_smooth",
    "virtual_batchnorm",
)


@dataclass
class Combo:
    """A named set of plugins with their options."""

    name: str
    plugins: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return (
            re.sub(
                r"[^A-Za-z0-9_.-]+", "_", self.name.replace("+", "plus_").replace(",", "+")
            ).strip("_")
            or "none"
        )


def _plugins_of(text: str) -> list[str]:
    text = text.strip()
    if text in ("", "none"):
        return []
    if text == "all":
        return list(TRICKS)
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_combos(text: str) -> list[Combo]:
    """``"none; minibatch; minibatch,label_smooth; all"`` -> combos, named as written."""
    combos = [Combo(part.strip(), _plugins_of(part)) for part in text.split(";") if part.strip()]
    if not combos:
        raise GantricksError(f"--combos {text!r} names no combination; separate them with ';'")
    return combos


def load_combo_file(path: str | Path) -> list[Combo]:
    """TOML: ``[[combo]]`` tables with ``name``, ``plugins`` (list) and optional ``options``
    (plugin option tables, e.g. ``options.minibatch.kernels = 50``)."""
    data = load_toml(path)
    raw = data.get("combo")
    if not isinstance(raw, list) or not raw:
        raise GantricksError(f"combo file {str(path)!r} has no [[combo]] tables")
    combos = []
    for i, entry in enumerate(raw):
        unknown = set(entry) - {"name", "plugins", "options"}
        if unknown or "plugins" not in entry:
            raise GantricksError(
                f"combo file {str(path)!r}, combo #{i + 1}: keys must be name, plugins, options "
                f"(got {', '.join(sorted(entry))})"
            )
        plugins = entry["plugins"]
        plugins = _plugins_of(plugins) if isinstance(plugins, str) else list(plugins)
        combos.append(
            Combo(entry.get("name", ",".join(plugins) or "none"), plugins, entry.get("options", {}))
        )
    return combos


def ablation_combos() -> list[Combo]:
    """Leave one out over the five tricks: all five, then all minus each one. Not the
    paper's table 3 (its "all" has no historical averaging and its −L rows take labels
    away); that table's rows are ``benchmarks/configs/cifar10_ablation.toml``."""
    out = [Combo("all", list(TRICKS))]
    out += [Combo(f"all - {t}", [x for x in TRICKS if x != t]) for t in TRICKS]
    return out


def check_unique(combos: list[Combo]) -> None:
    """Two combos with one name (or one run-folder name) would share runs and rows."""
    for what, key in (("name", lambda c: c.name), ("run-folder name", lambda c: c.slug)):
        seen: dict[str, Combo] = {}
        for c in combos:
            other = seen.setdefault(key(c), c)
            if other is not c:
                raise GantricksError(
                    f"combos {other.name!r} and {c.name!r} have the same {what} "
                    f"{key(c)!r}, so their runs would overwrite each other; give each combo "
                    "its own name (a combo file's `name = ...`)"
                )
