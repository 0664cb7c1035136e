"""Pieces the sub-commands share."""

from __future__ import annotations

import argparse
from typing import Any

from gantricks.config import RunConfig


def add_set(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable)."""
    p.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="sets", help=help
    )


def default(field: str) -> Any:
    """A core option's default, for help texts."""
    return RunConfig.model_fields[field].default
