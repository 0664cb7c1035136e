"""A run in a process of its own: ``python -m gantricks.bench.worker`` (the local executor,
the task pickled on stdin) or a Slurm job (submitit calls :func:`execute`).

The process is given its environment before torch starts: ``CUDA_VISIBLE_DEVICES`` (the one
GPU it may use) and the number of CPU threads, so runs that share a machine share it as
planned rather than each taking every core.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gantricks.bench.combos import Combo
from gantricks.bench.spec import BenchSpec, run_dir, run_name

#: Exit codes of a worker process.
OK, FAILED, NOT_STARTED, INTERRUPTED = 0, 1, 3, 130


@dataclass
class Task:
    """One run to train somewhere, and how."""

    spec: BenchSpec
    combo: Combo
    seed: int
    threads: int | None = None
    stop_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def name(self) -> str:
        return run_name(self.combo, self.seed)

    @property
    def run_dir(self) -> Path:
        return run_dir(self.spec, self.combo, self.seed)


def execute(task: Task) -> dict[str, Any]:
    """Run ``task`` in this process (a worker or a Slurm job) and return its record;
    ``{"status": "not started"}`` when the bench had stopped before it began.

    SIGUSR2, which submitit asks Slurm to send before a job's time limit, stops the run
    like the bench's stop file: it saves ``last.pt`` and is recorded as interrupted with
    ``stop_reason = "time limit"``; the bench submits it again, to resume."""
    from gantricks.bench.runs import StopFlag, run_one

    os.environ.update(task.env)
    import torch

    if task.threads:
        torch.set_num_threads(task.threads)
    stop = StopFlag(Path(task.stop_file) if task.stop_file else None)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGUSR2, lambda *_: stop.set(reason="time limit"))
    try:
        record = run_one(task.spec, task.combo, task.seed, stop, task.attempt)
    finally:
        if previous is not None:
            signal.signal(signal.SIGUSR2, previous)
    return record if record is not None else {"status": "not started"}


def main() -> int:
    task: Task = pickle.load(sys.stdin.buffer)
    try:
        status = execute(task)["status"]
    except KeyboardInterrupt:
        return INTERRUPTED
    return {"ok": OK, "not started": NOT_STARTED, "interrupted": INTERRUPTED}.get(status, FAILED)


if __name__ == "__main__":
    sys.exit(main())
