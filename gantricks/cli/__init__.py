"""The ``gantricks`` command line: one module per sub-command (train, plugins, sample,
eval, bench, the latent tools, features); this one parses and reports errors.

Exit status: 0 success; 1 training stopped on a non-finite loss (or every run of a bench
failed); 2 a usage or data error, a plugin's GantricksError (one paragraph naming the
bad value and what is allowed), or a file that could not be written (a full disk, a
read-only folder: one sentence naming the path, the cause and what was kept); 3 a plugin
raised an unexpected exception (the message names the plugin and the hook;
``--traceback`` or ``GANTRICKS_TRACEBACK=1`` shows the traceback); 130 Ctrl-C or SIGTERM,
at any moment, start-up included.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
import warnings
from typing import Any, NoReturn

from gantricks import __version__
from gantricks.cli import bench, evaluate, features, latent, plugins, sample, train
from gantricks.cli.train import train_options, train_plugins
from gantricks.errors import GantricksError, PluginError, TrainingStopped, WriteError
from gantricks.files import as_write_error, is_write_error
from gantricks.startup import INTERRUPTED, signals_interrupt

__all__ = ["build_parser", "main", "train_options", "train_plugins"]

#: Environment variable that turns on ``--traceback``.
TRACEBACK_ENV = "GANTRICKS_TRACEBACK"

#: The end of ``gantricks train --help``.
TRAIN_EPILOG = (
    "Precision: --set precision=bf16 runs forward passes under bf16 autocast. On a CPU that "
    "pays on some machines and costs many times the fp32 time on others with the same CPU "
    "flags (avx512_bf16, amx_bf16), so before a CPU run in bf16 gantricks times a training "
    "step in both precisions (a few seconds) and warns, with both times, when bf16 is the "
    "slower here; --set bf16_probe=false skips the probe. "
    "Exit status: 0 done; 1 a loss became non-finite; 2 a usage or data error, or a file "
    "that could not be written (full disk, read-only folder: the message names the path, the "
    "cause and what was kept, e.g. last.pt and its step); 3 a plugin raised an exception; "
    "130 Ctrl-C or SIGTERM (the step in progress is finished and last.pt saved; during "
    "start-up the command just stops)."
)


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line, like gantricks' other errors (the full
    usage, a dozen lines, is what ``--help`` is for)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gantricks",
        description="DCGAN training with the Improved-GAN tricks as plugins.",
    )
    parser.add_argument("--version", action="version", version=f"gantricks {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help=f"on an error, also print the Python traceback (or set {TRACEBACK_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, plugins, sample, evaluate, bench, latent, features):
        command.add_command(sub)
    sub.choices["train"].epilog = TRAIN_EPILOG
    return parser


def _format_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    """A warning as one line a user reads, not Python's file:line and source excerpt."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"gantricks: warning{kind}: {message}\n"


def _show_traceback(args: argparse.Namespace, error: BaseException) -> None:
    if getattr(args, "traceback", False) or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        traceback.print_exception(error.__cause__ or error, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status. Ctrl-C or SIGTERM at any moment ends it
    with 130 and no traceback (during start-up too: see :mod:`gantricks.startup`)."""
    thread_hook = threading.excepthook
    threading.excepthook = _thread_failed
    try:
        with signals_interrupt():
            try:
                return _run(argv)
            except KeyboardInterrupt:
                print("gantricks: stopped", file=sys.stderr)
                return INTERRUPTED
    finally:
        threading.excepthook = thread_hook


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    """A background thread's failed write (TensorBoard's event writer on a full disk) is
    raised again in the main thread, which reports it in one sentence: no traceback here."""
    if args.exc_value is not None and is_write_error(args.exc_value):
        return
    threading.__excepthook__(args)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    library_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # the command line's, not the library's
    try:
        return int(args.func(args) or 0)
    except TrainingStopped as e:
        print(f"gantricks: {e}", file=sys.stderr)
        return 1
    except PluginError as e:
        _show_traceback(args, e)
        hint = (
            ""
            if args.traceback
            else f" (the traceback: gantricks --traceback ..., or {TRACEBACK_ENV}=1)"
        )
        print(f"gantricks: error: {e}{hint}", file=sys.stderr)
        return 3
    except GantricksError as e:
        _show_traceback(args, e)
        print(f"gantricks: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write outside gantricks' own helpers: still one sentence
        error: WriteError | None = as_write_error(e)
        if error is None:
            raise
        _show_traceback(args, e)
        print(f"gantricks: error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = library_format


if __name__ == "__main__":
    sys.exit(main())
