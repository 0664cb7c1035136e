"""The training loop never reads device values back to the host between log steps."""

from __future__ import annotations

import sys

import pytest
import torch

from gantricks.run import prepare

from .conftest import QUIET, TRICKS

# Every Tensor method that copies a value to the host (and so waits for the device).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_reads(monkeypatch):
    calls: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            calls.append(f"{_name} from {caller}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return calls


@pytest.mark.parametrize("plugins", [[], TRICKS], ids=["plain", "all-tricks"])
def test_no_host_read_in_training_steps(tiny, plugins, host_reads):
    trainer, _ = prepare(
        {**tiny, "steps": 100, "log_every": 100},
        plugins=[*QUIET, "no:checkpoint", "no:samples", *plugins],
    )
    trainer.hook.gantricks_train_start(trainer=trainer)
    trainer.train_step()  # first step may set things up
    host_reads.clear()
    for _ in range(3):
        trainer.train_step()
        trainer.step += 1
        trainer.hook.gantricks_step_end(trainer=trainer, step=trainer.step)
    assert host_reads == []
    trainer.log()  # the one deliberate read
    assert [c.split(" from ")[0] for c in host_reads] == ["tolist"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_sync_on_cuda(tiny):
    trainer, _ = prepare(
        {**tiny, "device": "cuda", "steps": 100, "log_every": 100},
        plugins=[*QUIET, "no:checkpoint", "no:samples", *TRICKS],
    )
    trainer.hook.gantricks_train_start(trainer=trainer)
    trainer.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
