"""Ctrl-C and SIGTERM on the command line, from the first moment: no traceback, exit 130.

The ``gantricks`` command (and ``python -m gantricks``) imports torch, torchvision and the
rest before its ``main()`` runs, for a second or more; Python's own handler would turn a
Ctrl-C then into a KeyboardInterrupt traceback from deep inside an import. This module is
the first thing ``gantricks/__init__.py`` imports and has no dependencies: when the process
is the command line (never when gantricks is imported as a library), it makes SIGINT and
SIGTERM end the process at once, quietly, with status 130; nothing has been written yet.
:func:`signals_interrupt` then hands both signals to ``main()`` as KeyboardInterrupt, so
that what it has started (a run folder, a checkpoint write) is cleaned up on the way out.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
INTERRUPTED = 130
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def is_command_line() -> bool:
    """Whether this process is ``gantricks ...`` or ``python -m gantricks ...``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("gantricks", "gantricks.exe", "gantricks-script.py"):
        return True
    argv = list(getattr(sys, "orig_argv", []))
    return "-mgantricks" in argv or any(
        a == "-m" and b == "gantricks" for a, b in itertools.pairwise(argv)
    )


def _quiet_exit(signum: int, frame: FrameType | None) -> None:
    """Stop during start-up: nothing is open or half written yet."""
    try:
        sys.stdout.flush()
        sys.stderr.write("\ngantricks: stopped\n")
        sys.stderr.flush()
    finally:
        os._exit(INTERRUPTED)  # not SystemExit: an import's bare `except:` could swallow it


def guard_start_up() -> bool:
    """In the command-line process, end quietly on SIGINT or SIGTERM until ``main()`` takes
    the signals over; return whether the guard was installed. A signal whose handler is not
    Python's default (ignored by the parent, or set by someone else) is left alone."""
    if not is_command_line() or threading.current_thread() is not threading.main_thread():
        return False
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    taken = [s for s in _SIGNALS if signal.getsignal(s) is defaults[s]]
    for s in taken:
        signal.signal(s, _quiet_exit)
    return bool(taken)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise KeyboardInterrupt (``main()`` reports it and
    exits with 130; the training loop installs its own finish-the-step handler within);
    the previous handlers are restored on exit. A signal the process was started with
    ignored (a background job of a script ignores SIGINT) stays ignored. Outside the main
    thread: nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [s for s in _SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, _raise_interrupt) for s in taken}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


GUARDED = guard_start_up()
