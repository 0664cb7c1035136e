"""Trick combinations: from ``--combos`` text, a TOML combo file, or the leave-one-out set."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gantricks.config import load_toml
from gantricks.errors import GantricksError

#: The Improved-GAN tricks (each a plugin): the bench's HParams record each as on or off.
TRICKS = (
    "feature_matching",
    "minibatch",
    "historical_averaging",
    "label_smooth",
    "virtual_batchnorm",
    "labels",
)
#: ``all``: the paper's best CIFAR-10 model ("Our methods", Salimans et al. 2016, Table 3).
#: No feature matching (the authors never combined it with minibatch discrimination) and no
#: historical averaging (not in that model).
PAPER = ("minibatch", "labels", "label_smooth", "virtual_batchnorm")


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
        return list(PAPER)
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_combos(text: str) -> list[Combo]:
    """``"none; minibatch; minibatch,label_smooth; all"`` -> combos, named as written
    (``all``: the paper's combination, :data:`PAPER`)."""
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
    """The rows of the paper's Table 3, as plugin sets: Our methods (:data:`PAPER`), then
    −VBN+BN (G keeps its batch norm), −L+HA (labels out, historical averaging in), −LS,
    −L, −MBF. The authors' set-up around them (model, generator steps, loss, rates) is in
    ``benchmarks/configs/paper_table3.toml``."""

    def without(*names: str) -> list[str]:
        return [p for p in PAPER if p not in names]

    return [
        Combo("Our methods", list(PAPER)),
        Combo("-VBN+BN", without("virtual_batchnorm")),
        Combo("-L+HA", [*without("labels"), "historical_averaging"]),
        Combo("-LS", without("label_smooth")),
        Combo("-L", without("labels")),
        Combo("-MBF", without("minibatch")),
    ]


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
