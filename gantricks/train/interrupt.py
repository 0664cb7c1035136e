"""Ctrl-C and SIGTERM during training: finish the step, save, stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def graceful_interrupt(
    on_first: Callable[[str], None], requested: Callable[[], bool]
) -> Iterator[None]:
    """While inside: the first SIGINT or SIGTERM calls ``on_first(signal name)`` (the loop
    then finishes its step, saves and stops); once ``requested()`` is true, a second one
    raises KeyboardInterrupt at once. SIGTERM is what batch schedulers (Slurm, Kubernetes)
    send before they kill a job, so a preempted run keeps its last step. Outside the main
    thread signals cannot be caught, and nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if requested():
            raise KeyboardInterrupt
        on_first(signal.Signals(signum).name)

    caught = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, handler) for s in caught}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
