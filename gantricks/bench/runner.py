"""``run_bench``: plan the runs, hand them to an executor, follow them, write the reports.

Interruption: the first Ctrl-C or SIGTERM asks every running run to finish its step, save
``last.pt`` and stop (in this process the trainer hears the signal itself; other processes
and Slurm jobs see the bench's stop file); no new run starts; the reports are written with
what finished, and :class:`BenchInterrupted` is raised (``gantricks bench`` exits 130). The
same command continues: finished runs are reused, stopped ones resume from ``last.pt``.
A second Ctrl-C stops everything at once.
"""

from __future__ import annotations

import math
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gantricks.bench.executors import Executor, make_executor
from gantricks.bench.report import write_reports
from gantricks.bench.runs import StopFlag, finished
from gantricks.bench.spec import (
    BenchSpec,
    check_combos,
    check_data,
    check_spec,
    run_dir,
    settings_of,
)
from gantricks.bench.worker import Task

STOP_FILE = ".stop"
#: Times a Slurm run stopped by its job's time limit is submitted again in one invocation.
RESUBMIT = 3
#: Seconds between progress lines while nothing ends (a long run, a Slurm queue).
HEARTBEAT = 120.0


class BenchInterrupted(KeyboardInterrupt):
    """The bench was stopped (Ctrl-C, SIGTERM, or a run that was); its reports hold what
    finished. ``records`` as :func:`run_bench` returns them."""

    def __init__(self, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.records = records


class Progress:
    """Runs finished / running / failed / to do, and an ETA from finished runs' times."""

    def __init__(self, total: int, slots: int | None, label: str) -> None:
        self.total = total
        self.slots = slots
        self.label = label
        self.last = time.monotonic()

    def line(self, records: dict[Any, dict[str, Any]], running: int, todo: int) -> str:
        self.last = time.monotonic()
        ok = [r for r in records.values() if r["status"] == "ok"]
        failed = sum(r["status"] == "failed" for r in records.values())
        stopped = sum(r["status"] == "interrupted" for r in records.values())
        text = f"{len(ok)}/{self.total} finished, {running} {self.label}, {failed} failed"
        if stopped:
            text += f", {stopped} interrupted"
        text += f", {todo} to do"
        times = [float(r["seconds"]) for r in ok if r.get("seconds")]
        left = running + todo
        if left and times:
            parallel = self.slots or max(1, running)
            eta = statistics.fmean(times) * math.ceil(left / parallel)
            text += f"; ETA {_duration(eta)} (mean {statistics.fmean(times):.0f} s a run)"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _scores(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items())
        return f"{shown} ({record.get('seconds', 0):.0f} s)"
    if record["status"] == "interrupted":
        return f"interrupted at step {record.get('step', '?')} (resumes next time)"
    return f"FAILED: {record.get('error')}"


@contextmanager
def _signals(stop: StopFlag, executor: Executor) -> Iterator[None]:
    """First SIGINT/SIGTERM: ask the runs to stop. Second: end them at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        if count > 1:
            executor.kill()
            raise KeyboardInterrupt
        stop.set(write=True)
        print(
            f"\nbench: {signal.Signals(signum).name}: stopping; running runs finish their step "
            "and save a checkpoint (again to stop at once)",
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _time_limit(record: dict[str, Any]) -> bool:
    return record.get("stop_reason") == "time limit"


def _placeholder(spec: BenchSpec, combo: Any, seed: int) -> dict[str, Any]:
    return {
        "combo": combo.name,
        "plugins": combo.plugins,
        "seed": seed,
        "status": "to do",
        "run": str(run_dir(spec, combo, seed)),
    }


def run_bench(spec: BenchSpec, executor: Executor | None = None) -> list[dict[str, Any]]:
    """Train and score every (combo, seed), skipping finished ones and resuming stopped
    ones; write the reports; return one record per run (combos × seeds, in order)."""
    check_spec(spec)
    check_combos(spec)
    check_data(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    todo, records = [], {}
    for combo in spec.combos:
        settings = settings_of(spec, combo)
        for seed in range(spec.seeds):
            done = finished(run_dir(spec, combo, seed), settings)
            if done is not None:
                records[(combo.name, seed)] = {**done, "skipped": True}
            else:
                todo.append((combo, seed))
    total = len(spec.combos) * spec.seeds
    stop = StopFlag(spec.out / STOP_FILE)
    stop.clear()  # left by a bench that was killed
    executor = executor or make_executor(spec, stop)
    print(
        f"bench: {total} runs ({len(records)} already finished, {len(todo)} to do) in "
        f"{spec.out}; {executor.describe()}",
        flush=True,
    )
    label = "running or queued" if spec.executor == "slurm" else "running"
    progress = Progress(total, executor.slots, label)
    announced = False
    resubmitted: dict[tuple[str, int], int] = {}
    try:
        with _signals(stop, executor):
            while executor.in_flight() or (todo and not stop.requested):
                while todo and not stop.requested and executor.room() > 0:
                    combo, seed = todo.pop(0)
                    executor.submit(Task(spec, combo, seed, stop_file=str(stop.path)))
                ended = executor.poll(timeout=1.0)
                for task, record in ended:
                    if record is None:  # not started: the bench was stopping
                        todo.insert(0, (task.combo, task.seed))
                        continue
                    key = (task.combo.name, task.seed)
                    records[key] = record
                    if _time_limit(record) and not stop.requested:
                        if record["status"] == "interrupted" and resubmitted.get(key, 0) < RESUBMIT:
                            resubmitted[key] = resubmitted.get(key, 0) + 1
                            todo.insert(0, (task.combo, task.seed))
                            print(
                                f"bench: {task.name} reached its job's time limit at step "
                                f"{record.get('step')}: submitted again, to resume",
                                flush=True,
                            )
                            continue
                    elif record.get("stop_requested") or record["status"] == "interrupted":
                        stop.set(write=True)  # a run was stopped (by a signal): so is the bench
                    print(
                        f"bench: {record['combo']} seed {record['seed']}: {_scores(record)} | "
                        + progress.line(records, executor.in_flight(), len(todo)),
                        flush=True,
                    )
                if stop.requested and not announced:
                    announced = True
                    executor.stop()  # nothing more starts; queued jobs are cancelled
                if not ended and time.monotonic() - progress.last > HEARTBEAT:
                    print(
                        "bench: " + progress.line(records, executor.in_flight(), len(todo)),
                        flush=True,
                    )
    finally:
        executor.close()
        stop.clear()
    ordered = [
        records.get((c.name, s)) or _placeholder(spec, c, s)
        for c in spec.combos
        for s in range(spec.seeds)
    ]
    write_reports(spec, ordered)
    if announced:
        done = sum(r["status"] == "ok" for r in ordered)
        stopped = sum(r["status"] == "interrupted" for r in ordered)
        raise BenchInterrupted(
            f"bench stopped: {done} of {total} runs finished, {stopped} interrupted (saved; "
            "they resume from their last.pt), the rest to do. Run the same command again "
            "to continue.",
            ordered,
        )
    return ordered
