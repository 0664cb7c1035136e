"""Evaluation and sample grids never touch training's random stream: a run with evaluations
in between, stopped and resumed anywhere, equals the straight run bit for bit, also when
training draws from torch's global RNG (dropout, input noise)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gantricks import Plugin, checkpoint, hookimpl
from gantricks.metrics.evaluate import EvalSettings, Evaluator
from gantricks.run import prepare
from gantricks.sampling import generate

from .conftest import QUIET


class GlobalRandom(Plugin):
    """Training that draws from torch's global RNG: dropout in D and in G, Gaussian noise
    on everything D sees."""

    @hookimpl
    def gantricks_build_models(self, models):
        models.discriminator.features.append(nn.Dropout(0.3))
        models.generator.net.insert(3, nn.Dropout(0.2))

    @hookimpl
    def gantricks_discriminator_inputs(self, inputs):
        for key, x in inputs.items():
            inputs[key] = x + 0.1 * torch.randn_like(x)


def _fit(options, plugins, resume=None):
    trainer, ckpt = prepare(
        options, plugins=plugins, resume=resume, extra_plugins=[(GlobalRandom(), "noise")]
    )
    trainer.fit(resume=ckpt)
    return trainer


def _state(trainer):
    return checkpoint.load(trainer.run_dir / "checkpoints" / "last.pt")


@pytest.mark.parametrize("with_noise", [False, True], ids=["default", "dropout-and-noise"])
def test_evaluations_between_steps_keep_resume_exact(tiny, with_noise):
    """10 steps straight against 5 + 5 resumed, with the glyphs classifier scoring every 3
    steps and at each half's end (step 5 only in the halved run) and sample grids every 2."""
    options = {
        **tiny,
        "eval": {"every": 3, "num_samples": 20, "batch_size": 20},
        "samples": {"every": 2, "n": 8},
        "checkpoint": {"every": 0},
    }
    plugins = ["no:progress", "no:tensorboard"]  # eval, samples and checkpoint on
    fit = _fit if with_noise else _plain_fit
    straight = fit({**options, "steps": 10, "name": "straight"}, plugins)
    half = fit({**options, "steps": 5, "name": "half"}, plugins)
    assert (half.run_dir / "eval" / "step_0000005.json").is_file()  # scored at its end
    assert not (straight.run_dir / "eval" / "step_0000005.json").exists()
    resumed = fit({"steps": 10}, None, resume=half.run_dir)
    a, b = _state(straight), _state(resumed)
    assert a["step"] == b["step"] == 10
    for part in ("generator", "discriminator"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    for opt in ("opt_g", "opt_d"):
        for i, s in a[opt]["state"].items():
            for k, v in s.items():
                assert torch.equal(v, b[opt]["state"][i][k]), (opt, i, k)
    assert torch.equal(a["torch_rng"], b["torch_rng"])  # the global stream itself
    assert torch.equal(a["noise"], b["noise"])


def _plain_fit(options, plugins, resume=None):
    trainer, ckpt = prepare(options, plugins=plugins, resume=resume)
    trainer.fit(resume=ckpt)
    return trainer


def test_sampling_and_evaluation_leave_the_global_rng_as_found(tiny):
    trainer, _ = prepare(tiny, plugins=[*QUIET], extra_plugins=[(GlobalRandom(), "noise")])
    before = torch.get_rng_state()
    images = generate(trainer.generator, trainer.sample_z(8))  # dropout in G draws
    trainer.preview(8)
    evaluator = Evaluator(
        EvalSettings(metrics=["classifier"], num_samples=10, batch_size=10, progress=False),
        "glyphs",
        "data",
        28,
    )
    evaluator.evaluate(trainer.generator, trainer.config.nz)
    assert torch.equal(torch.get_rng_state(), before)
    assert images.shape == (8, 1, 28, 28)
