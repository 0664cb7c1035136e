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


def _worker(rank: int, world: int, port: int, out: str, plugins: list[str]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
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
