"""An interrupted bench: it stops, records no partial run as finished, and the next
invocation resumes the stopped runs from their last.pt to the scores of a straight bench."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gantricks import checkpoint
from gantricks.bench import BenchInterrupted, BenchSpec, parse_combos, run_bench
from gantricks.metrics.classifier import DigitClassifier, classifier_path, save_classifier

# Stops a run at step 3 while the file beside it exists, as a Ctrl-C there would.
STOPPER = """
from pathlib import Path
from gantricks import hookimpl
MARK = Path(__file__).with_suffix(".on")
@hookimpl
def gantricks_step_end(trainer, step):
    if step == 3 and MARK.exists():
        trainer.stop_requested = True
"""
# Slows each step down and, at step 2, leaves a mark for the test to send its signal.
SLOW = """
import os, time
from pathlib import Path
from gantricks import hookimpl
@hookimpl
def gantricks_step_end(trainer, step):
    marks = os.environ.get("BENCH_TEST_MARKS")
    if marks and step == 2:
        (Path(marks) / trainer.run_dir.name).touch()
    time.sleep(0.05)
"""
TINY = {"ngf": 8, "ndf": 8, "nz": 16, "batch_size": 16}


@pytest.fixture
def classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    info = {"dataset": "glyphs", "test_accuracy": 0.99}
    save_classifier(DigitClassifier().eval(), classifier_path("glyphs"), info)


def _spec(out: Path, combos: str, steps: int) -> BenchSpec:
    return BenchSpec(
        combos=parse_combos(combos),
        seeds=2,
        base={**TINY, "dataset": "glyphs", "device": "cpu", "steps": steps},
        metrics=["classifier"],
        out=out,
        num_samples=20,
        eval_every=steps // 2,
        threads=1,
    )


def _result(out: Path, name: str) -> dict:
    return json.loads((out / "runs" / name / "result.json").read_text())


def _scores(records):
    """Scores and final weights. (Not loss_d/loss_g: the mean over the last logging window,
    which after a resume inside that window covers only the steps since.)"""
    out = []
    for r in records:
        ckpt = checkpoint.load(Path(r["run"]))
        weights = [(k, v.tolist()) for k, v in sorted(ckpt["generator"].items())]
        out.append((r["combo"], r["seed"], r["metrics"], ckpt["step"], weights))
    return out


def test_a_stopped_run_is_never_finished_and_resumes_exactly(classifier, tmp_path):
    stopper = tmp_path / "stopper.py"
    stopper.write_text(STOPPER)
    straight = run_bench(_spec(tmp_path / "straight", f"{stopper}", 8))
    spec = _spec(tmp_path / "stopped", f"{stopper}", 8)
    stopper.with_suffix(".on").touch()
    with pytest.raises(BenchInterrupted, match="Run the same command again") as caught:
        run_bench(spec)
    first, second = caught.value.records
    assert (first["status"], first["step"], first["total_steps"]) == ("interrupted", 3, 8)
    assert "metrics" not in first  # eval/step_0000003.json exists, but is not the result
    assert second["status"] == "to do"  # the bench stopped: the next run did not start
    run = tmp_path / "stopped" / "runs" / first["run"].split("/")[-1]
    assert (run / "checkpoints" / "last.pt").is_file()
    assert _result(tmp_path / "stopped", run.name)["status"] == "interrupted"
    assert "1 of 2" not in (tmp_path / "stopped" / "results.md").read_text()
    stopper.with_suffix(".on").unlink()
    resumed = run_bench(spec)
    assert resumed[0]["resumed_from_step"] == 3 and "resumed_from_step" not in resumed[1]
    assert _scores(resumed) == _scores(straight)  # bit for bit: CPU runs are reproducible
    # A run killed outright ("running" in its result.json) resumes from its last.pt too.
    path = run / "result.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "status": "running"}))
    again = run_bench(spec)
    assert again[0]["resumed_from_step"] == 8 and _scores(again) == _scores(straight)


def _bench_command(out: Path, plugin: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gantricks",
        "bench",
        "--combos",
        str(plugin),
        "--seeds",
        "2",
        "--steps",
        "40",
        "--eval-every",
        "20",
        "--num-samples",
        "20",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--set",
        *(f"{k}={v}" for k, v in TINY.items()),
        "--out",
        str(out),
        *extra,
    ]


def _interrupt_and_resume(tmp_path: Path, sig: signal.Signals, *extra: str) -> None:
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "bench"
    command = _bench_command(out, plugin, *extra)
    env = {**os.environ, "BENCH_TEST_MARKS": str(marks)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not any(marks.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run reached step 2"
        time.sleep(0.1)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, (stdout, stderr)
    assert b"Run the same command again to continue" in stderr
    records = [_result(out, p.name) for p in (out / "runs").iterdir()]
    stopped = [r for r in records if r["status"] == "interrupted"]
    assert stopped and all(r["step"] < 40 for r in stopped)
    assert all(r["status"] != "ok" or r["step"] == 40 for r in records)
    for r in stopped:
        assert (Path(r["run"]) / "checkpoints" / "last.pt").is_file()
    done = subprocess.run(command, capture_output=True, env=env, timeout=600)
    assert done.returncode == 0, done
    resumed = [_result(out, p.name) for p in sorted((out / "runs").iterdir())]
    assert all(r["status"] == "ok" for r in resumed)
    by_run = {r["run"]: r for r in resumed}
    assert all(by_run[r["run"]]["resumed_from_step"] == r["step"] for r in stopped)
    # The same scores as a straight bench of the same runs.
    straight = run_bench(_spec(tmp_path / "straight", str(plugin), 40))
    assert sorted(_scores(resumed)) == sorted(_scores(straight))


def test_ctrl_c_stops_the_bench_and_the_next_invocation_resumes(classifier, tmp_path):
    _interrupt_and_resume(tmp_path, signal.SIGINT)


@pytest.mark.slow
def test_sigterm_stops_worker_processes_through_the_stop_file(classifier, tmp_path):
    _interrupt_and_resume(tmp_path, signal.SIGTERM, "--jobs", "2")
