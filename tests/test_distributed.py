"""Two processes (gloo, CPU) train exactly like one process with the combined batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gantricks.distributed import DistributedBatchNorm2d
from gantricks.run import prepare

from .conftest import QUIET

STEPS = 3


def _options(out: Path, batch: int) -> dict:
    return {
        "out_dir": str(out),
        "name": "run",
        "dataset": "glyphs",
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "batch_size": batch,
        "steps": STEPS,
        "log_every": 1,
        "seed": 0,
        "device": "cpu",
        "sync_bn": True,
    }


def _join(rank: int, world: int, port: int, **env: str) -> None:
    """The environment torchrun gives a worker, one thread per process."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        **env,
    )
    torch.set_num_threads(1)


def _worker(rank: int, world: int, port: int, out: str, plugins: list[str]) -> None:
    _join(rank, world, port)
    try:
        trainer, _ = prepare(_options(Path(out), batch=8), plugins=plugins)
        assert trainer.dist.world_size == world
        assert (
            sum(isinstance(m, DistributedBatchNorm2d) for m in trainer.discriminator.modules()) == 1
        )
        trainer.fit()
        state = {"g": trainer.generator.state_dict(), "d": trainer.discriminator.state_dict()}
        torch.save(state, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(tmp_path: Path, plugins: list[str]):
    trainer, _ = prepare(_options(tmp_path / "single", batch=16), plugins=plugins)
    trainer.fit()
    return trainer


@pytest.mark.parametrize(
    "plugins", [[], ["label_smooth", "historical_averaging"]], ids=["plain", "tricks"]
)
def test_two_processes_match_one_with_the_combined_batch(tmp_path, plugins):
    specs = [*QUIET, "no:samples", *plugins]
    out = tmp_path / "ddp"
    mp.start_processes(
        _worker, args=(2, _free_port(), str(out), specs), nprocs=2, start_method="spawn"
    )
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _single(tmp_path, specs)
    # Both ranks hold identical weights, equal to the single process's (sync-bn, same data).
    for net, module in (("g", single.generator), ("d", single.discriminator)):
        for name, value in module.state_dict().items():
            torch.testing.assert_close(ranks[0][net][name], ranks[1][net][name], rtol=0, atol=0)
            torch.testing.assert_close(
                ranks[0][net][name], value, rtol=1e-4, atol=1e-5, msg=f"{net}.{name}"
            )
    # Rank 0 alone logged, with the losses of the combined batch.
    rows = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    single_rows = [
        json.loads(x) for x in (single.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for a, b in zip(rows, single_rows, strict=True):
        assert a["loss_d"] == pytest.approx(b["loss_d"], rel=1e-4)
        assert a["loss_g"] == pytest.approx(b["loss_g"], rel=1e-4)
    assert (out / "run" / "checkpoints" / "last.pt").is_file()


def _eval_worker(rank: int, world: int, port: int, out: str, cache: str) -> None:
    _join(rank, world, port, GANTRICKS_CACHE=cache)
    try:
        opts = {
            **_options(Path(out), batch=8),
            "eval": {"every": 2, "num_samples": 30, "batch_size": 8},
        }
        trainer, _ = prepare(opts, plugins=["no:progress", "no:tensorboard", "no:samples"])
        assert "eval" in trainer.plugins.plugins  # every rank scores its share
        trainer.fit()
        evaluator = trainer.plugins.plugins["eval"].obj.evaluator
        result = evaluator.evaluate(trainer.generator, 16, rank, world)
        if rank == 0:
            torch.save(
                {"g": trainer.generator.state_dict(), "result": result}, Path(out) / "eval.pt"
            )
        else:
            assert result is None
    finally:
        dist.destroy_process_group()


def test_evaluation_is_sharded_across_ranks_and_equals_one_process(tmp_path):
    from gantricks.metrics.evaluate import EvalSettings, Evaluator
    from gantricks.models import build_models

    cache = tmp_path / "cache"  # empty: the shipped glyph classifier scores, nothing trains
    os.environ["GANTRICKS_CACHE"] = str(cache)
    try:
        out = tmp_path / "ddp"
        mp.start_processes(
            _eval_worker,
            args=(2, _free_port(), str(out), str(cache)),
            nprocs=2,
            start_method="spawn",
        )
        saved = torch.load(out / "eval.pt", weights_only=False)
        # Rank 0 wrote the scores of the evaluations during training (steps 2 and 3).
        assert sorted(p.name for p in (out / "run" / "eval").glob("*.json")) == [
            "step_0000002.json",
            "step_0000003.json",
        ]
        models = build_models(16, 1, 28, 8, 8)
        models.generator.load_state_dict(saved["g"])
        settings = EvalSettings(["classifier"], num_samples=30, batch_size=8, progress=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the workers, for the same arithmetic
        try:
            single = Evaluator(settings, "glyphs", "data", 28).evaluate(models.generator, 16)
        finally:
            torch.set_num_threads(threads)
    finally:
        del os.environ["GANTRICKS_CACHE"]
    # Four batches of 8, 8, 8 and 6 samples, two per rank: the same 30 samples and scores.
    sharded, alone = saved["result"]["metrics"]["classifier"], single["metrics"]["classifier"]
    assert sharded["histogram"] == alone["histogram"] and sum(alone["histogram"]) == 30
    assert alone["classes_covered"] > 1  # the test can tell samples apart
    assert sharded["classifier_score"] == pytest.approx(alone["classifier_score"], rel=1e-9)


def _failing_worker(rank: int, world: int, port: int, out: str, case: str) -> None:
    _join(rank, world, port)
    try:
        opts = _options(Path(out), batch=8)
        plugins = ["no:progress", "no:tensorboard", "no:samples"]
        if case == "eval":
            missing = str(Path(out) / "missing.pth")
            opts["eval"] = {"metrics": ["is"], "inception_weights": missing}
        elif case == "nonfinite":  # NaN weights from step 2; rank 0 saves every step
            poison = Path(out) / "poison.py"
            poison.write_text(
                "from gantricks import hookimpl\n"
                "@hookimpl\ndef gantricks_generator_loss(trainer, terms, batch):\n"
                "    if trainer.step >= 1:\n"
                "        terms['adv'] = terms['adv'] * float('nan')\n"
            )
            plugins += ["no:eval", str(poison)]
            opts.update(steps=8, log_every=4, checkpoint={"every": 1})
        else:  # MNIST from an empty folder, no download
            opts.update(dataset="mnist", data_dir=str(Path(out) / "empty"), download=False)
        try:
            trainer, _ = prepare(opts, plugins=plugins)
            trainer.fit()
        except Exception as e:  # every rank must stop with the reason, none may hang
            (Path(out) / f"rank{rank}.txt").write_text(str(e))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("case", "rank1_says", "reason"),
    [
        ("eval", "rank 0 could not set up evaluation", "missing.pth"),
        ("data", "rank 0 could not load the dataset", "train-images-idx3-ubyte"),
        # Only rank 0 saves checkpoints; it must not stop alone when the weights go NaN.
        ("nonfinite", "in the 4 steps up to step 4", "became non-finite"),
    ],
)
def test_a_failure_on_rank_0_stops_every_rank(tmp_path, case, rank1_says, reason):
    out = tmp_path / "ddp"
    out.mkdir()
    ctx = mp.start_processes(
        _failing_worker,
        args=(2, _free_port(), str(out), case),
        nprocs=2,
        start_method="spawn",
        join=False,
    )
    deadline = 120
    while not ctx.join(timeout=5):
        deadline -= 5
        if deadline <= 0:
            for p in ctx.processes:
                p.kill()
            pytest.fail("a rank was left waiting after rank 0 failed")
    assert reason in (out / "rank0.txt").read_text()
    assert rank1_says in (out / "rank1.txt").read_text()
    assert reason in (out / "rank1.txt").read_text()
    if case == "nonfinite":  # the last good state is kept, the bad one set apart
        ckpts = out / "run" / "checkpoints"
        assert torch.load(ckpts / "last.pt", weights_only=True)["step"] == 1
        assert (ckpts / "nonfinite.pt").is_file()


def test_sync_batchnorm_under_bf16_autocast_keeps_fp32_statistics():
    """Statistics, counts and running averages in fp32 whatever the autocast dtype: a
    bf16 count of 4900 is 4896, and bf16 running statistics cannot be lerped into fp32."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        torch.manual_seed(0)
        x = torch.randn(100, 3, 7, 7) * 2 + 5
        plain = torch.nn.BatchNorm2d(3)
        synced = DistributedBatchNorm2d(3)
        expected = plain(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = synced(x.bfloat16())
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), expected, atol=0.03, rtol=0.01)
        assert synced.running_mean.dtype == torch.float32
        torch.testing.assert_close(synced.running_mean, plain.running_mean, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(synced.running_var, plain.running_var, atol=2e-3, rtol=2e-3)
    finally:
        dist.destroy_process_group()
