"""Where bench runs train: the same scores in-process, in worker processes and as
(submitit local) Slurm jobs; each worker sees the GPU it was given; executor options."""

from __future__ import annotations

import csv
import os
import sys

import pytest
import torch

from gantricks import GantricksError
from gantricks.bench import BenchSpec, SlurmOptions, parse_combos, run_bench
from gantricks.bench.executors import InlineExecutor, ProcessExecutor, cpu_cores, make_executor
from gantricks.bench.runs import StopFlag
from gantricks.bench.worker import execute
from gantricks.metrics.classifier import DigitClassifier, classifier_path, save_classifier

SCORES = ("combo", "seed", "status", "classifier_score", "classes_covered", "kl_to_uniform")


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRICKS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    info = {"dataset": "glyphs", "test_accuracy": 0.99}
    save_classifier(DigitClassifier().eval(), classifier_path("glyphs"), info)
    base = {"ngf": 8, "ndf": 8, "nz": 16, "batch_size": 16, "steps": 6}
    return BenchSpec(
        combos=parse_combos("none"),
        seeds=2,
        base={**base, "device": "cpu"},
        metrics=["classifier"],
        out=tmp_path / "bench",
        num_samples=20,
        eval_every=3,
        threads=1,  # the same in every executor: CPU results are then bit-identical
    )


def _rows(path):
    rows = csv.DictReader((path / "results.csv").open())
    return sorted(tuple(r[k] for k in (*SCORES, "loss_d", "loss_g")) for r in rows)


def test_worker_processes_give_the_same_results_rows_as_one_process(spec, tmp_path):
    spec.out = tmp_path / "inline"
    inline = run_bench(spec)
    assert [r["worker"]["pid"] for r in inline] == [os.getpid()] * 2
    spec.out, spec.jobs = tmp_path / "local", 2
    local = run_bench(spec)
    assert len({r["worker"]["pid"] for r in local} | {os.getpid()}) == 3  # a process each
    assert [r["worker"]["threads"] for r in local] == [1, 1]
    assert {r["status"] for r in inline + local} == {"ok"}
    assert _rows(tmp_path / "inline") == _rows(tmp_path / "local")
    assert len(_rows(tmp_path / "local")) == 2


@pytest.mark.slow  # ~30 s: submitit starts a controller and a job process per run
def test_slurm_jobs_through_submitit_give_the_same_results_rows(spec, tmp_path):
    pytest.importorskip("submitit")
    spec.out = tmp_path / "inline"
    run_bench(spec)
    spec.out, spec.executor = tmp_path / "slurm", "slurm"
    spec.slurm = SlurmOptions(cluster="local", gpus_per_run=0, cpus_per_run=1, time_min=10)
    slurm = run_bench(spec)
    assert {r["status"] for r in slurm} == {"ok"}
    assert all(r["worker"]["pid"] != os.getpid() for r in slurm)
    assert _rows(tmp_path / "inline") == _rows(tmp_path / "slurm")
    # A second invocation, with another executor, picks up the finished runs.
    spec.executor, spec.slurm, spec.jobs = "local", None, 2
    again = run_bench(spec)
    assert all(r.get("skipped") for r in again)


def test_slurm_without_submitit_says_what_to_install(spec, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    spec.executor = "slurm"
    with pytest.raises(GantricksError, match=r"pip install 'gantricks\[slurm\]'"):
        run_bench(spec)


def test_each_run_process_sees_only_the_gpu_it_was_given(spec):
    spec.base.pop("device")  # auto: the CPU here, whatever CUDA_VISIBLE_DEVICES says
    spec.gpus, spec.seeds = ["0", "1"], 2
    records = run_bench(spec)
    assert sorted(r["worker"]["cuda_visible_devices"] for r in records) == ["0", "1"]
    assert all(r["status"] == "ok" and r["worker"]["pid"] != os.getpid() for r in records)
    ex = make_executor(BenchSpec([], 1, {}, [], spec.out, gpus=["0", "1"], runs_per_gpu=2), None)
    assert isinstance(ex, ProcessExecutor)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in ex.slot_envs] == ["0", "0", "1", "1"]
    assert ex.threads == max(1, cpu_cores() // 4)


def test_runs_share_the_cores_and_one_run_keeps_this_process(spec):
    spec.threads = None
    assert isinstance(make_executor(spec, StopFlag()), InlineExecutor)
    spec.jobs = 2
    ex = make_executor(spec, StopFlag())
    assert isinstance(ex, ProcessExecutor) and ex.slots == 2
    assert ex.threads == max(1, cpu_cores() // 2)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gpus": ["0"], "executor": "slurm"}, "--gpus is for the local executor"),
        ({"gpus": ["0"], "jobs": 2}, "--jobs and --gpus both"),
        ({"gpus": ["zero"]}, "CUDA device numbers"),
        ({"gpus": ["0"]}, "--gpus with --device cpu"),
        ({"runs_per_gpu": 2}, "--runs-per-gpu needs --gpus"),
        ({"executor": "slurm", "jobs": 2}, "--slurm-max-running"),
        ({"baseline": "nosuch"}, "baseline 'nosuch' is not one of"),
        ({"executor": "pbs"}, "choose one of local, slurm"),
    ],
)
def test_executor_options_that_cannot_work_are_refused_before_training(spec, change, message):
    for key, value in change.items():
        setattr(spec, key, value)
    with pytest.raises(GantricksError, match=message):
        run_bench(spec)
    assert not (spec.out / "runs").exists()


USR2_AT_STEP_3 = """
import os, signal
from gantricks import hookimpl
@hookimpl
def gantricks_step_end(trainer, step):
    if step == 3 and not trainer.run_dir.joinpath("checkpoints").exists():
        os.kill(os.getpid(), signal.SIGUSR2)  # Slurm's warning before the time limit
"""


class AsJobs(InlineExecutor):
    """Each run as a Slurm job runs it: worker.execute, with its SIGUSR2 handler."""

    def poll(self, timeout):
        task = self.queue.pop(0)
        return [(task, execute(task))]


def test_a_job_at_its_time_limit_saves_and_is_submitted_again_to_resume(spec, tmp_path, capsys):
    plugin = tmp_path / "usr2.py"
    plugin.write_text(USR2_AT_STEP_3)
    spec.combos, spec.seeds = parse_combos(str(plugin)), 1
    records = run_bench(spec, executor=AsJobs(StopFlag()))
    assert "reached its job's time limit at step 3: submitted again" in capsys.readouterr().out
    assert records[0]["status"] == "ok" and records[0]["resumed_from_step"] == 3
