"""One (combo, seed) run: trained, or resumed from its ``last.pt``, then scored.

A run's state lives in its folder ``OUT/runs/<combo>-seed<k>``: ``result.json`` says
``running`` (written once the run has its folder), then ``ok``, ``failed`` or
``interrupted``. A bench started again reuses ``ok`` runs made with the same settings,
resumes ``interrupted`` (or ``running``: the process was killed) runs from
``checkpoints/last.pt`` exactly as ``gantricks train --resume`` does, and starts the others
afresh.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from gantricks.bench.combos import Combo
from gantricks.bench.spec import OFF, BenchSpec, eval_options, run_dir, run_name, settings_of
from gantricks.checkpoint import atomic_write_text
from gantricks.errors import GantricksError
from gantricks.metrics.registry import headline_numbers


class StopFlag:
    """The bench's request that runs stop: set in this process (its signal handler), or a
    file the bench process writes for runs in other processes and on other machines (on the
    shared filesystem). A run that sees it finishes its step, saves ``last.pt`` and returns,
    as on Ctrl-C. Not a signal: a run that also receives the scheduler's own SIGTERM must
    not take two signals for "stop at once"."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._set = False
        self._trainer: Any = None
        #: Why, when it was not the bench: "time limit" (Slurm's warning signal).
        self.reason: str | None = None
        self._watcher: tuple[threading.Thread, threading.Event] | None = None

    @property
    def requested(self) -> bool:
        return self._set or (self.path is not None and self.path.exists())

    def set(self, write: bool = False, reason: str | None = None) -> None:
        self._set = True
        self.reason = self.reason or reason
        if write and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{os.getpid()}\n")
        self._tell_trainer()

    def clear(self) -> None:
        self._set = False
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _tell_trainer(self) -> None:
        trainer = self._trainer
        if trainer is not None and not trainer.stop_requested:
            trainer.stop_requested = True  # the loop ends after this step; last.pt is saved
            print("bench: stop requested: finishing this step and saving a checkpoint", flush=True)

    def watch(self, trainer: Any) -> None:
        """Until :meth:`unwatch`: stop ``trainer`` when the flag is set or its file appears."""
        self._trainer = trainer
        if self.requested:
            self._tell_trainer()
        if self.path is None:
            return
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.5):
                if self.requested:
                    self._tell_trainer()
                    return

        thread = threading.Thread(target=poll, name="bench-stop", daemon=True)
        thread.start()
        self._watcher = (thread, done)

    def unwatch(self) -> None:
        """Stop watching; the watcher thread has ended when this returns (none is left
        for the interpreter to kill at exit)."""
        self._trainer = None
        if self._watcher is not None:
            thread, done = self._watcher
            done.set()
            thread.join()
            self._watcher = None


def read_record(path: Path) -> dict[str, Any]:
    """A run folder's result.json, or {} (absent or unreadable)."""
    try:
        return json.loads((path / "result.json").read_text())
    except (OSError, ValueError):
        return {}


def finished(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The run's result if it finished with these settings; None if it is still to do.
    A finished run made with other settings is an error: rerunning it would replace a
    result the user may want, and reusing it would report what this command did not run."""
    record = read_record(path)
    if record.get("status") != "ok":
        return None
    saved = record.get("settings")
    if saved is None:  # written before results recorded their settings
        print(f"bench: {path.name}: settings not recorded (an older bench); reused", flush=True)
        return record
    if saved != settings:
        keys = sorted({*saved, *settings})
        changed = ", ".join(k for k in keys if saved.get(k) != settings.get(k))
        raise GantricksError(
            f"{path} holds a finished run made with other settings (differing: "
            f"{changed}); its scores are not this command's. Use another --out, or delete "
            "that folder's runs to run them again."
        )
    return record


def resumable(path: Path, record: dict[str, Any], settings: dict[str, Any]) -> bool:
    """A run stopped early (or killed) with these settings and a ``last.pt`` to go on from."""
    return (
        record.get("status") in ("interrupted", "running")
        and record.get("settings") == settings
        and (path / "checkpoints" / "last.pt").is_file()
    )


def worker_info() -> dict[str, Any]:
    """Where this run trains: host, process, torch threads, the GPUs it was shown."""
    import torch

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if os.environ.get("SLURM_JOB_ID"):
        info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return info


def headlines(result: dict[str, Any]) -> dict[str, float]:
    """The headline number of each metric in an eval result (the metric registry's)."""
    return headline_numbers(result)


def curve(path: Path) -> dict[str, dict[str, float]]:
    """Headline scores of every evaluation in a run folder: ``{metric: {step: value}}``
    (steps as strings, as JSON keeps them), so reports can be redrawn without the folder."""
    out: dict[str, dict[str, float]] = {}
    for f in sorted((path / "eval").glob("step_*.json")):
        try:
            result = json.loads(f.read_text())
            scores, step = headlines(result), int(result["step"])
        except (OSError, ValueError, KeyError):
            continue
        for key, value in scores.items():
            out.setdefault(key, {})[str(step)] = value
    return out


def run_one(
    spec: BenchSpec,
    combo: Combo,
    seed: int,
    stop: StopFlag | None = None,
    attempt: str | None = None,
) -> dict[str, Any] | None:
    """Train (or resume) and score one (combo, seed). Never raises for a failed run: its
    error is the result. None when the bench was stopped before this run began.

    The result is written to the run folder's ``result.json`` (atomically: an interrupted
    bench never leaves a half-written "finished" marker) and returned. ``status`` is
    ``ok`` only when the run reached its last step; a run stopped early is ``interrupted``.
    A second interrupt (stop at once) is recorded and raised again.
    """
    from gantricks.run import prepare

    stop = stop or StopFlag()
    path = run_dir(spec, combo, seed)
    settings = settings_of(spec, combo)
    previous = read_record(path)
    resume = resumable(path, previous, settings)
    if stop.requested:
        return None
    start = time.time()
    earlier = float(previous.get("seconds") or 0) if resume else 0.0
    record: dict[str, Any] = {
        "combo": combo.name,
        "plugins": combo.plugins,
        "seed": seed,
        "run": str(path),
        "settings": settings,
        "attempt": attempt,
        "worker": worker_info(),
    }
    trainer = None
    try:
        opts = {
            **spec.base,
            **combo.options,
            "seed": seed,
            "name": run_name(combo, seed),
            "out_dir": str(spec.out / "runs"),
            "eval": eval_options(spec),
        }
        if not resume and path.exists():  # a failed or unresumable earlier attempt
            if previous.get("status") in ("interrupted", "running"):
                print(
                    f"bench: {path.name}: cannot resume (other settings, or no last.pt): "
                    "starting it again",
                    flush=True,
                )
            shutil.rmtree(path)
        trainer, ckpt = prepare(
            opts, plugins=[*OFF, *combo.plugins], resume=path if resume else None
        )
        record["worker"]["device"] = _device_name(trainer.device)
        if ckpt is not None:
            record["resumed_from_step"] = int(ckpt["step"])
            print(f"bench: {path.name}: resuming from step {ckpt['step']}", flush=True)
        _write(path, {**record, "status": "running", "started": start})
        if stop.requested:  # asked while this run was being prepared
            return None
        stop.watch(trainer)
        try:
            scalars = trainer.fit(resume=ckpt)
        finally:
            stop.unwatch()
        record["step"], record["total_steps"] = trainer.step, trainer.total_steps
        if trainer.step < trainer.total_steps:
            record["status"] = "interrupted"
        else:
            final = json.loads((path / "eval" / f"step_{trainer.step:07d}.json").read_text())
            record.update(
                status="ok",
                metrics=headlines(final),
                loss_d=scalars.get("loss_d"),
                loss_g=scalars.get("loss_g"),
                curve=curve(path),
            )
        record["stop_requested"] = trainer.stop_requested
        if trainer.stop_requested and stop.reason:
            record["stop_reason"] = stop.reason
    except KeyboardInterrupt:  # a second interrupt: stopped at once
        record.update(status="interrupted", stop_requested=True, error="stopped at once")
        _finish(path, record, start, earlier)
        raise
    except Exception as e:  # a failed run is recorded and the bench goes on
        record.update(
            status="failed",
            error=f"{type(e).__name__}: {e}",
            traceback=traceback.format_exc(limit=5),
        )
        if trainer is not None:
            record["step"] = trainer.step
    _finish(path, record, start, earlier)
    return record


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _finish(path: Path, record: dict[str, Any], start: float, earlier: float) -> None:
    record["seconds"] = round(earlier + time.time() - start, 1)
    _write(path, record)


def _write(path: Path, record: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / "result.json", json.dumps(record, indent=2) + "\n")
