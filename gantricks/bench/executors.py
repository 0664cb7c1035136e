"""Where a bench's runs train: in the bench's own process, in local worker processes (one
GPU each, or a share of the CPU cores), or as Slurm jobs through submitit.

The contract every executor keeps (tested for each in ``tests/test_bench_executors.py``):

- :meth:`Executor.submit` starts (or queues) a :class:`~gantricks.bench.worker.Task` while
  :meth:`Executor.room` is positive;
- :meth:`Executor.poll` returns ``(task, record)`` for runs that ended since the last call,
  each submitted task exactly once; ``record`` is what :func:`~gantricks.bench.runs.run_one`
  returned (and wrote to the run folder's ``result.json``), a ``failed`` record when the
  process or job died without one, or None when the run did not start (the bench was
  stopping);
- a run folder is written only by the run itself, so every executor leaves the same
  folders and a later bench, with any executor, picks them up;
- :meth:`Executor.stop` cancels runs that have not started (running ones are stopped by the
  bench's stop file, finish their step and save ``last.pt``); :meth:`Executor.kill` ends
  everything at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import site
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gantricks.bench.runs import StopFlag, read_record, run_one
from gantricks.bench.spec import BenchSpec, SlurmOptions, settings_of
from gantricks.bench.worker import NOT_STARTED, Task, execute
from gantricks.checkpoint import atomic_write_text
from gantricks.errors import GantricksError

#: The worker's command (not ``-m gantricks.bench.worker``, which would import the module
#: twice: once with its package, once as ``__main__``).
WORKER = "import sys; from gantricks.bench.worker import main; sys.exit(main())"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Executor:
    """Base class: see the module's docstring for the contract."""

    #: Runs at once (None: as many as the scheduler gives).
    slots: int | None = 1

    def describe(self) -> str:
        raise NotImplementedError

    def room(self) -> int:
        raise NotImplementedError

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[tuple[Task, dict[str, Any] | None]]:
        raise NotImplementedError

    def in_flight(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        """Cancel what has not started."""

    def kill(self) -> None:
        """End everything now (a second Ctrl-C)."""

    def close(self) -> None:
        """Release what the executor holds."""


def failure(task: Task, error: str) -> dict[str, Any]:
    """The record of a run whose process or job ended without writing one; written to the
    run folder so that the failure is on disk, as a run's own failure is."""
    record = {
        "combo": task.combo.name,
        "plugins": task.combo.plugins,
        "seed": task.seed,
        "run": str(task.run_dir),
        "settings": settings_of(task.spec, task.combo),
        "attempt": task.attempt,
        "status": "failed",
        "error": error,
    }
    task.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(task.run_dir / "result.json", json.dumps(record, indent=2) + "\n")
    return record


class InlineExecutor(Executor):
    """One run at a time in this process (``--jobs 1``): the trainer handles Ctrl-C itself."""

    def __init__(self, stop: StopFlag, threads: int | None = None) -> None:
        self.stop_flag = stop
        self.threads = threads
        self.queue: list[Task] = []

    def describe(self) -> str:
        return "one run at a time in this process"

    def room(self) -> int:
        return 0 if self.queue else 1

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def in_flight(self) -> int:
        return len(self.queue)

    def poll(self, timeout: float) -> list[tuple[Task, dict[str, Any] | None]]:
        if not self.queue:
            return []
        task = self.queue.pop(0)
        import torch

        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            record = run_one(task.spec, task.combo, task.seed, self.stop_flag, task.attempt)
        finally:
            torch.set_num_threads(before)
        return [(task, record)]


def _child_env(extra: dict[str, str], threads: int | None) -> dict[str, str]:
    env = {**os.environ, **extra}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    # The worker imports this gantricks, wherever the bench's own came from (a checkout).
    root = str(Path(__file__).resolve().parents[2])
    if root not in [*site.getsitepackages(), site.getusersitepackages()]:
        paths = [root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class ProcessExecutor(Executor):
    """Runs in worker processes on this machine, one per slot. Each slot has its own
    environment: ``CUDA_VISIBLE_DEVICES`` of its GPU with ``--gpus``, so that the process
    sees only its device; on the CPU, each run's torch threads are the cores divided by the
    runs at once. Workers are in their own session: a Ctrl-C at the terminal reaches the
    bench alone, which stops them through the stop file (one request each)."""

    def __init__(self, slot_envs: list[dict[str, str]], threads: int | None, logs: Path) -> None:
        self.slot_envs = slot_envs
        self.slots = len(slot_envs)
        self.threads = threads
        self.logs = logs
        self.running: dict[int, tuple[Task, subprocess.Popen[bytes], Any]] = {}

    def describe(self) -> str:
        gpus = [e["CUDA_VISIBLE_DEVICES"] for e in self.slot_envs if "CUDA_VISIBLE_DEVICES" in e]
        where = f" on GPUs {','.join(dict.fromkeys(gpus))}" if gpus else ""
        threads = f", {self.threads} torch thread(s) each" if self.threads else ""
        return f"{self.slots} worker processes{where}{threads}"

    def room(self) -> int:
        return self.slots - len(self.running)

    def in_flight(self) -> int:
        return len(self.running)

    def submit(self, task: Task) -> None:
        slot = next(i for i in range(self.slots) if i not in self.running)
        task.env = dict(self.slot_envs[slot])
        task.threads = self.threads
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{task.name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(task.env, self.threads),
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(task))
        proc.stdin.close()
        self.running[slot] = (task, proc, log)

    def poll(self, timeout: float) -> list[tuple[Task, dict[str, Any] | None]]:
        deadline = time.monotonic() + timeout
        while True:
            ended = [s for s, (_, proc, _) in self.running.items() if proc.poll() is not None]
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        out = []
        for slot in ended:
            task, proc, log = self.running.pop(slot)
            log.close()
            out.append((task, self._record(task, proc.returncode)))
        return out

    def _record(self, task: Task, code: int) -> dict[str, Any] | None:
        record = read_record(task.run_dir)
        if record.get("attempt") == task.attempt and record.get("status") != "running":
            return record
        if code == NOT_STARTED:
            return None
        tail = _tail(self.logs / f"{task.name}.log")
        return failure(task, f"worker process exited with code {code} without a result: {tail}")

    def kill(self) -> None:
        for _, proc, _ in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # its second: the trainer stops at once

    def close(self) -> None:
        for _, proc, log in self.running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        self.running.clear()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


class SubmititExecutor(Executor):
    """One Slurm job per run, through submitit; runs submitted together form a job array.
    The bench process only waits (it never touches a GPU); the jobs write their run folders
    on the shared filesystem. ``cluster = "local"`` uses submitit's local executor."""

    def __init__(self, options: SlurmOptions, folder: Path) -> None:
        try:
            import submitit
        except ImportError:
            raise GantricksError(
                "--executor slurm needs submitit: pip install 'gantricks[slurm]' "
                "(or pip install submitit)"
            ) from None
        self.options = options
        self.slots = options.max_running
        self.executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=options.cluster)
        params: dict[str, Any] = {
            "name": "gantricks-bench",
            "timeout_min": options.time_min,
            "nodes": 1,
            "tasks_per_node": 1,
            "gpus_per_node": options.gpus_per_run,
            "cpus_per_task": options.cpus_per_run,
            "mem_gb": options.mem_gb,
        }
        if options.cluster == "slurm":
            params["slurm_partition"] = options.partition
            if options.extra:
                params["slurm_additional_parameters"] = dict(options.extra)
        self.executor.update_parameters(**params)
        self.queued: list[Task] = []
        self.jobs: list[tuple[Task, Any]] = []

    def describe(self) -> str:
        o = self.options
        where = f"partition {o.partition}" if o.partition else "the default partition"
        if o.cluster != "slurm":
            where = f"submitit's {o.cluster} executor"
        cap = f", at most {o.max_running} at once" if o.max_running else ""
        return (
            f"one job per run on {where}: {o.gpus_per_run} GPU(s), {o.cpus_per_run} CPU(s)"
            + (f", {o.mem_gb:g} GB" if o.mem_gb else "")
            + f", {o.time_min} min each{cap}"
        )

    def room(self) -> int:
        if self.slots is None:
            return sys.maxsize
        return self.slots - len(self.jobs) - len(self.queued)

    def in_flight(self) -> int:
        return len(self.jobs) + len(self.queued)

    def submit(self, task: Task) -> None:
        task.threads = self.options.cpus_per_run
        if not task.spec.out.is_absolute():  # jobs may start in another folder
            task.spec = dataclasses.replace(task.spec, out=task.spec.out.resolve())
        self.queued.append(task)

    def _flush(self) -> None:
        if not self.queued:
            return
        tasks, self.queued = self.queued, []
        with self.executor.batch():  # one job array
            jobs = [self.executor.submit(execute, t) for t in tasks]
        self.jobs += list(zip(tasks, jobs, strict=True))
        ids = [j.job_id for j in jobs]
        shown = ids[0] if len(ids) == 1 else f"{ids[0]} … {ids[-1]}"
        print(f"bench: submitted {len(jobs)} job(s) ({shown})", flush=True)

    def poll(self, timeout: float) -> list[tuple[Task, dict[str, Any] | None]]:
        self._flush()
        deadline = time.monotonic() + timeout
        while True:
            ended = [(t, j) for t, j in self.jobs if j.done()]
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        out = []
        for task, job in ended:
            self.jobs.remove((task, job))
            out.append((task, self._record(task, job)))
        return out

    def _record(self, task: Task, job: Any) -> dict[str, Any] | None:
        try:
            record = job.result()
        except Exception as e:  # the job died: out of memory, time, or a node failure
            record = read_record(task.run_dir)
            if record.get("attempt") == task.attempt and record.get("status") != "running":
                return record
            lines = str(e).strip().splitlines()
            return failure(task, f"job {job.job_id} failed: {' | '.join(lines[-3:])}")
        return None if record.get("status") == "not started" else record

    def stop(self) -> None:
        self.queued.clear()
        for _, job in self.jobs:
            if job.state in ("PENDING", "REQUEUED", "CONFIGURING"):
                job.cancel(check=False)

    def kill(self) -> None:
        self.queued.clear()
        for _, job in self.jobs:
            if not job.done():
                job.cancel(check=False)


def make_executor(spec: BenchSpec, stop: StopFlag) -> Executor:
    """The executor a spec asks for, with its runs' threads and devices."""
    if spec.executor == "slurm":
        return SubmititExecutor(spec.slurm or SlurmOptions(), spec.out / "slurm")
    if spec.gpus:
        envs = [{"CUDA_VISIBLE_DEVICES": g.strip()} for g in spec.gpus]
        envs = [e for e in envs for _ in range(spec.runs_per_gpu)]
    elif spec.jobs > 1:
        envs = [{} for _ in range(spec.jobs)]
    else:
        return InlineExecutor(stop, spec.threads)
    threads = spec.threads or max(1, cpu_cores() // len(envs))
    return ProcessExecutor(envs, threads, spec.out / "logs")
