"""The worked examples of docs/writing-a-plugin.md: each does what it says and resumes
exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from gantricks import Plugin, hookimpl, load_checkpoint
from gantricks.run import load_models, prepare
from gantricks.sampling import fixed_noise, generate

from .conftest import QUIET

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> str:
    return str(EXAMPLES / f"{name}.py")


class SeenByD(Plugin):
    """Keeps D's inputs and logits of the last step, beside D's logits on the clean batch."""

    @hookimpl(trylast=True)
    def gantricks_discriminator_loss(self, trainer, batch):
        self.batch = batch
        with torch.no_grad():
            self.clean_logits, _ = trainer.discriminator(batch.real)


def test_instance_noise_changes_what_d_sees(tiny):
    spy = SeenByD()
    trainer, _ = prepare(
        {**tiny, "steps": 2, "instance_noise": {"sigma": 0.5}},
        plugins=[*QUIET, example("instance_noise")],
        extra_plugins=[(spy, "spy")],
    )
    trainer.fit()
    b = spy.batch
    noise = b.d_real - b.real
    assert 0.45 < noise.std().item() < 0.55 and abs(noise.mean().item()) < 0.02
    assert (b.d_fake - b.fake.detach()).std().item() > 0.45
    assert not torch.allclose(spy.clean_logits, b.real_logits.detach())
    # In G's update too, with gradients through the noise to G.
    assert b.gen_fake.grad_fn is not None and (b.gen_fake - b.fake).std().item() > 0.45


def test_instance_noise_anneals_with_the_step(tiny):
    trainer, _ = prepare(
        {**tiny, "steps": 3, "instance_noise": {"sigma": 0.3, "anneal_steps": 6}},
        plugins=[*QUIET, example("instance_noise")],
    )
    trainer.fit()
    plugin = trainer.plugins.plugins["instance_noise"].obj
    assert plugin.sigma.item() == pytest.approx(0.15)
    assert plugin.sigma_at(6) == plugin.sigma_at(9) == 0.0


class GeneratorWeights(Plugin):
    @hookimpl(tryfirst=True)
    def gantricks_train_start(self, trainer):
        self.history = [[p.detach().clone() for p in trainer.generator.parameters()]]
        self.g = trainer.generator

    @hookimpl
    def gantricks_after_generator_step(self):
        self.history.append([p.detach().clone() for p in self.g.parameters()])


def test_ema_generator_averages_g_and_is_what_samples_come_from(tiny):
    spy = GeneratorWeights()
    decay = 0.8
    trainer, _ = prepare(
        {**tiny, "steps": 4, "ema_generator": {"decay": decay}},
        plugins=["no:progress", "no:tensorboard", "no:eval", example("ema_generator")],
        extra_plugins=[(spy, "weights")],
    )
    trainer.fit()
    ema = trainer.models.extra["ema_generator"]
    expected = spy.history[0]
    for weights in spy.history[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights, strict=True)]
    for got, want in zip(ema.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert trainer.sampling_generator is ema
    z = fixed_noise(8, 16, seed=0)
    assert torch.equal(trainer.sample(z), generate(ema, z))
    assert not torch.equal(trainer.sample(z), generate(trainer.generator, z))
    # gantricks sample / eval / the latent tools rebuild it from the checkpoint.
    models, _, _ = load_models(trainer.run_dir, "cpu")
    assert torch.equal(generate(models.sampling_generator, z), generate(ema, z))


def test_ttur_sets_each_players_rate(tiny):
    trainer, _ = prepare(
        {**tiny, "steps": 2, "ttur": {"lr_d": 3e-4, "lr_g": 5e-5}},
        plugins=[*QUIET, example("ttur")],
    )
    trainer.fit()
    assert [g["lr"] for g in trainer.opt_d.param_groups] == [3e-4]
    assert [g["lr"] for g in trainer.opt_g.param_groups] == [5e-5]
    resumed, ckpt = prepare({"steps": 4}, resume=trainer.run_dir)
    resumed.fit(resume=ckpt)
    assert resumed.opt_d.param_groups[0]["lr"] == 3e-4


def test_csv_logger_writes_every_logged_scalar(tiny):
    trainer, _ = prepare({**tiny, "steps": 6}, plugins=[*QUIET, example("csv_logger")])
    trainer.fit()
    with (trainer.run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    logged = [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [int(r["step"]) for r in rows] == [r["step"] for r in logged] == [2, 4, 6]
    assert [float(r["loss_d"]) for r in rows] == [r["loss_d"] for r in logged]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("instance_noise", {"sigma": 0.2, "anneal_steps": 5}),
        ("ema_generator", {"decay": 0.5}),
        ("r1_penalty", {"gamma": 1.0}),
        ("ttur", {}),
        ("csv_logger", {}),
    ],
)
def test_every_example_resumes_exactly(tiny, name, options):
    opts = {**tiny, name: options}
    plugins = [*QUIET, example(name)]
    straight, _ = prepare({**opts, "steps": 6, "name": "straight"}, plugins=plugins)
    straight.fit()
    half, _ = prepare({**opts, "steps": 3, "name": "half"}, plugins=plugins)
    half.fit()
    resumed, ckpt = prepare({"steps": 6}, resume=half.run_dir)
    resumed.fit(resume=ckpt)
    a = load_checkpoint(straight.run_dir)
    b = load_checkpoint(resumed.run_dir)
    for part in ("generator", "discriminator", "extra"):
        assert a[part].keys() == b[part].keys()
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert a["plugins"].keys() == b["plugins"].keys()
    if name == "csv_logger":

        def losses(run):
            with (run.run_dir / "metrics.csv").open(newline="") as f:
                return {r["step"]: (r["loss_d"], r["loss_g"]) for r in csv.DictReader(f)}

        # The first half logged at its last step (3) too, as metrics.jsonl does; the rows
        # whose loss windows match are equal.
        a, b = losses(straight), losses(resumed)
        assert list(a) == ["2", "4", "6"] and list(b) == ["2", "3", "4", "6"]
        assert a["2"] == b["2"] and a["6"] == b["6"]
