"""Pieces the sub-commands share."""

from __future__ import annotations

import argparse
from typing import Any

from gantricks.config import RunConfig
from gantricks.errors import GantricksError


def add_set(p: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable)."""
    p.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="sets", help=help
    )


def add_no_download(p: argparse.ArgumentParser) -> None:
    """``--no-download``: a missing dataset is an error instead of a download (unset: the
    run's ``download`` option decides)."""
    p.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        default=None,
        help="never try to download a missing dataset",
    )


def check_counts(args: argparse.Namespace, *names: str) -> None:
    """Counts (samples, images per row, splits, ...) are whole numbers above zero: a usage
    error (exit status 2) naming the flag otherwise, before anything is loaded."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            flag = "--" + name.replace("_", "-")
            raise GantricksError(f"{flag} must be a positive number, got {value}")


def default(field: str) -> Any:
    """A core option's default, for help texts."""
    return RunConfig.model_fields[field].default
