"""Hook order and arguments, recorded by a test plugin; every hook documented and called."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

from gantricks import (
    GantricksError,
    Models,
    RunConfig,
    StepBatch,
    Trainer,
    checkpoint,
    hookimpl,
    hookspecs,
)
from gantricks.hookspecs import hook_names
from gantricks.run import prepare

from .conftest import QUIET


class Recorder:
    """Implements every hook and records (hook, step) with the arguments it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.loaded_state: dict | None = None

    @hookimpl
    def gantricks_configure(self, config):
        assert isinstance(config, RunConfig)
        self.calls.append(("gantricks_configure", None))

    @hookimpl
    def gantricks_build_models(self, models, config):
        assert isinstance(models, Models) and isinstance(config, RunConfig)
        assert next(models.generator.parameters()).device.type == "cpu"
        self.calls.append(("gantricks_build_models", None))

    @hookimpl
    def gantricks_train_start(self, trainer):
        assert isinstance(trainer, Trainer)
        self.calls.append(("gantricks_train_start", trainer.step))

    @hookimpl
    def gantricks_step_start(self, trainer, step):
        assert step == trainer.step
        self.calls.append(("gantricks_step_start", step))

    @hookimpl
    def gantricks_discriminator_inputs(self, trainer, inputs, phase, batch):
        assert set(inputs) == {"real", "fake"}
        assert inputs["real"] is batch.real  # generator_batch = "same": one real batch
        assert inputs["fake"].requires_grad == (phase == "generator")
        self.calls.append(("gantricks_discriminator_inputs", phase))

    @hookimpl
    def gantricks_sampling_generator(self, models):
        assert isinstance(models, Models)
        self.calls.append(("gantricks_sampling_generator", None))

    @hookimpl
    def gantricks_discriminator_targets(self, trainer, batch):
        assert isinstance(batch, StepBatch) and batch.real_logits is None
        assert batch.fake.requires_grad
        self.calls.append(("gantricks_discriminator_targets", trainer.step))

    @hookimpl
    def gantricks_discriminator_loss(self, trainer, terms, batch):
        assert set(terms) == {"real", "fake"}
        assert batch.real_logits.shape == (batch.real.shape[0], 1)
        assert batch.fake_features.shape[0] == batch.real.shape[0]
        assert not batch.fake_logits.requires_grad or batch.fake_logits.grad_fn is not None
        terms["zero"] = 0.0 * batch.real_logits.mean()
        self.calls.append(("gantricks_discriminator_loss", trainer.step))

    @hookimpl
    def gantricks_after_discriminator_step(self, trainer):
        self.calls.append(("gantricks_after_discriminator_step", trainer.step))

    @hookimpl
    def gantricks_generator_loss(self, trainer, terms, batch):
        assert set(terms) == {"adv"} and batch.gen_logits is not None
        self.calls.append(("gantricks_generator_loss", trainer.step))

    @hookimpl
    def gantricks_after_generator_step(self, trainer):
        self.calls.append(("gantricks_after_generator_step", trainer.step))

    @hookimpl
    def gantricks_step_end(self, trainer, step):
        assert step == trainer.step
        self.calls.append(("gantricks_step_end", step))

    @hookimpl
    def gantricks_log(self, trainer, step, scalars):
        assert {
            "loss_d",
            "loss_g",
            "loss_d/real",
            "loss_d/fake",
            "loss_d/zero",
            "loss_g/adv",
            "img_per_s",
            "epoch",
        } <= set(scalars)
        assert all(isinstance(v, float) for v in scalars.values())
        self.calls.append(("gantricks_log", step))

    @hookimpl
    def gantricks_train_end(self, trainer, reason):
        self.calls.append(("gantricks_train_end", reason))

    @hookimpl
    def gantricks_state_dict(self, trainer):
        self.calls.append(("gantricks_state_dict", trainer.step))
        return {"seen": torch.tensor([trainer.step])}

    @hookimpl
    def gantricks_load_state_dict(self, trainer, state):
        self.loaded_state = state
        self.calls.append(("gantricks_load_state_dict", trainer.step))


STEP = [
    "gantricks_step_start",
    "gantricks_discriminator_targets",
    "gantricks_discriminator_inputs",
    "gantricks_discriminator_loss",
    "gantricks_after_discriminator_step",
    "gantricks_discriminator_inputs",
    "gantricks_generator_loss",
    "gantricks_after_generator_step",
    "gantricks_step_end",
]


def test_hook_order_and_arguments(tiny):
    rec = Recorder()
    trainer, _ = prepare({**tiny, "steps": 3}, plugins=QUIET, extra_plugins=[(rec, "rec")])
    trainer.fit()
    names = [c[0] for c in rec.calls]
    expected = ["gantricks_configure", "gantricks_build_models", "gantricks_train_start"]
    for step in range(3):
        expected += STEP
        if step + 1 in (2, 3):
            expected.append("gantricks_log")
    # The checkpoint plugin's train_end runs first (tryfirst: the final checkpoint is
    # saved before any other plugin's end work) and collects plugin state for it; then the
    # samples plugin draws its last grid from the sampling generator.
    expected += ["gantricks_state_dict", "gantricks_train_end", "gantricks_sampling_generator"]
    assert names == expected
    phases = [c[1] for c in rec.calls if c[0] == "gantricks_discriminator_inputs"]
    assert phases == ["discriminator", "generator"] * 3
    assert [c[1] for c in rec.calls if c[0] == "gantricks_step_end"] == [1, 2, 3]
    assert ("gantricks_train_end", "completed") in rec.calls


def test_every_hook_is_documented_and_called_by_the_trainer(tiny):
    rec = Recorder()
    trainer, _ = prepare({**tiny, "steps": 2}, plugins=QUIET, extra_plugins=[(rec, "rec")])
    trainer.fit()
    resumed = Recorder()
    trainer2, ckpt = prepare({"steps": 4}, resume=trainer.run_dir, extra_plugins=[(resumed, "rec")])
    trainer2.fit(resume=ckpt)
    called = {c[0] for c in rec.calls} | {c[0] for c in resumed.calls}
    for name in hook_names():
        spec = getattr(hookspecs, name)
        doc = inspect.getdoc(spec) or ""
        assert len(doc) > 80, f"{name} needs a docstring that says when it runs"
        for arg in inspect.signature(spec).parameters:
            assert f":param {arg}:" in doc, f"{name} does not document {arg}"
        assert name in called, f"the trainer never calls {name}"
    assert int(resumed.loaded_state["seen"]) == 2


def test_loss_hooks_change_what_is_minimised(tiny):
    """A plugin that removes the generator's adversarial term leaves G untouched."""

    class Freeze:
        @hookimpl
        def gantricks_generator_loss(self, terms, batch):
            terms.pop("adv")
            terms["nothing"] = 0.0 * batch.gen_logits.sum()

    trainer, _ = prepare({**tiny, "steps": 2}, plugins=QUIET, extra_plugins=[(Freeze(), "f")])
    before = [p.detach().clone() for p in trainer.models.generator.parameters()]
    trainer.fit()
    after = list(trainer.models.generator.parameters())
    # Adam with a zero gradient makes no update.
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_targets_hook_sets_what_the_discriminator_is_trained_towards(tiny):
    class Targets:
        def __init__(self):
            self.seen = []

        @hookimpl
        def gantricks_discriminator_targets(self):
            return 0.25, 0.5

        @hookimpl
        def gantricks_discriminator_loss(self, terms, batch):
            expected = torch.nn.functional.binary_cross_entropy_with_logits(
                batch.real_logits, torch.full_like(batch.real_logits, 0.25)
            )
            torch.testing.assert_close(terms["real"], expected)
            self.seen.append((batch.real_target, batch.fake_target))

    t = Targets()
    trainer, _ = prepare({**tiny, "steps": 1}, plugins=QUIET, extra_plugins=[(t, "t")])
    trainer.fit()
    assert t.seen == [(0.25, 0.5)]


class _Refuses:
    @hookimpl
    def gantricks_train_start(self, trainer):
        raise GantricksError("refuse: this run's settings do not suit me")


def test_a_run_refused_before_its_first_step_gives_its_folder_back(tiny):
    named = {**tiny, "steps": 2, "name": "exp"}
    t, _ = prepare(named, plugins=QUIET, extra_plugins=[(_Refuses(), "refuse")])
    assert t.run_dir.name == "exp" and (t.run_dir / "config.json").is_file()
    with pytest.raises(GantricksError, match="refuse: this run's settings"):
        t.fit()
    assert not t.run_dir.exists()
    with pytest.raises(GantricksError, match="given back; prepare a new run"):
        t.fit()  # the name may belong to another run by now: never train into it
    assert not t.run_dir.exists()
    # Refused while the trainer is built (an option a plugin rejects in configure).
    with pytest.raises(GantricksError, match="iss"):
        prepare({**named, "eval": {"metrics": ["iss"]}}, plugins=["no:progress", "no:tensorboard"])
    assert not t.run_dir.exists()
    # So the retry gets the name asked for, not exp-2.
    ok, _ = prepare(named, plugins=QUIET)
    assert ok.run_dir == t.run_dir
    ok.fit()
    # A folder holding anything else is kept whole: a resumed run's ...
    r, ckpt = prepare({"steps": 3}, resume=ok.run_dir, extra_plugins=[(_Refuses(), "refuse")])
    with pytest.raises(GantricksError, match="refuse"):
        r.fit(resume=ckpt)
    assert checkpoint.load(ok.run_dir)["step"] == 2
    # ... and a new run's, once something besides config.json was written to it.
    refusing = [(_Refuses(), "refuse")]
    n, _ = prepare({**named, "name": "other"}, plugins=QUIET, extra_plugins=refusing)
    (n.run_dir / "notes.txt").write_text("kept")
    with pytest.raises(GantricksError, match="refuse"):
        n.fit()
    assert (n.run_dir / "config.json").is_file() and (n.run_dir / "notes.txt").is_file()
    # A folder the user made (empty) loses only the config.json this run wrote into it.
    mine = Path(tiny["out_dir"]) / "mine"
    mine.mkdir()
    m, _ = prepare({**named, "name": "mine"}, plugins=QUIET, extra_plugins=refusing)
    assert m.run_dir == mine
    with pytest.raises(GantricksError, match="refuse"):
        m.fit()
    assert mine.is_dir() and not any(mine.iterdir())
