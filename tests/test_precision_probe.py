"""bf16 on a CPU only where it pays: a short probe of a training step in both precisions
warns, with both times, when bf16 is the slower here."""

from __future__ import annotations

import warnings

import pytest
import torch

from gantricks.run import prepare
from gantricks.train import precision

from .conftest import QUIET


@pytest.fixture
def measured(monkeypatch):
    """The probe's measurement, replaced: (fp32 ms, bf16 ms) as the test says."""
    calls: list[int] = []
    result = {"times": (10.0, 25.0)}

    def fake(trainer, batch):
        calls.append(batch)
        return result["times"]

    monkeypatch.setattr(precision, "_measure", fake)
    monkeypatch.setattr(precision, "_measured", {})
    return calls, result


def test_a_slower_bf16_is_reported_with_both_times(tiny, measured):
    calls, result = measured
    with pytest.warns(UserWarning) as record:
        trainer, _ = prepare({**tiny, "precision": "bf16"}, plugins=QUIET)
    message = str(record[0].message)
    assert message.startswith("bf16 is slower than fp32 on this CPU (25 ms vs 10 ms per")
    assert "--set precision=fp32" in message and "bf16_probe=false" in message
    assert calls == [16]  # the run's batch (16 here; never more than PROBE_BATCH)
    # Faster in bf16: nothing said. Measured once per process and model shape.
    result["times"] = (25.0, 10.0)
    precision._measured.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare({**tiny, "precision": "bf16", "name": "b"}, plugins=QUIET)
        prepare({**tiny, "precision": "bf16", "name": "c"}, plugins=QUIET)
        # Not probed: fp32, or switched off.
        prepare({**tiny, "name": "d"}, plugins=QUIET)
        prepare({**tiny, "precision": "bf16", "bf16_probe": False, "name": "e"}, plugins=QUIET)
    assert calls == [16, 16]
    assert trainer.config.bf16_probe is True


def test_the_probe_times_copies_and_leaves_the_run_untouched(tiny):
    trainer, _ = prepare({**tiny, "precision": "bf16", "bf16_probe": False}, plugins=QUIET)
    weights = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    rng, noise = torch.get_rng_state(), trainer.noise.get_state()
    position = trainer.sampler.state_dict()
    fp32, bf16 = precision.probe_bf16(trainer)
    assert fp32 > 0 and bf16 > 0
    assert precision.probe_bf16(trainer) == (fp32, bf16)  # measured once
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(trainer.noise.get_state(), noise)
    after = trainer.sampler.state_dict()
    assert after.keys() == position.keys()
    for k, v in position.items():
        assert torch.equal(after[k], v) if isinstance(v, torch.Tensor) else after[k] == v, k
    for k, v in trainer.generator.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_a_player_the_probe_cannot_step_is_reported_not_fatal(tiny, monkeypatch):
    def broken(trainer, batch):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(precision, "_measure", broken)
    monkeypatch.setattr(precision, "_measured", {})
    with pytest.warns(UserWarning, match=r"bf16_probe: could not time .*no such kernel"):
        trainer, _ = prepare({**tiny, "precision": "bf16"}, plugins=QUIET)
    trainer.fit()
    assert trainer.step == tiny["steps"]


def test_train_help_and_readme_document_the_probe_and_write_failures(capsys):
    from pathlib import Path

    from gantricks.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--set bf16_probe=false skips the probe" in text
    assert "a file that could not be written" in text and "130 Ctrl-C or SIGTERM" in text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "bf16_probe" in readme and "### When a write fails" in readme
    assert "2.0× faster on an AVX-512 BF16 CPU" not in readme  # one machine's figure
