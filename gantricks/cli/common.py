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


def positive_int(text: str) -> int:
    """argparse type for counts (samples, images per row, splits, ...): a whole number
    above zero, or a usage error naming the flag (exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def default(field: str) -> Any:
    """A core option's default, for help texts."""
    return RunConfig.model_fields[field].default
