"""The latent distribution (``latent``): drawn as asked everywhere z is drawn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gantricks import hookimpl
from gantricks.data import to_uint8
from gantricks.errors import GantricksError
from gantricks.metrics.evaluate import sample_batches
from gantricks.run import prepare
from gantricks.sampling import draw_latent, fixed_noise

from .conftest import QUIET


@pytest.mark.parametrize(("kind", "var"), [("normal", 1.0), ("uniform", 1 / 3)])
def test_draw_latent_moments(kind, var):
    z = draw_latent(200_000, 4, kind, generator=torch.Generator().manual_seed(0))
    assert z.shape == (200_000, 4)
    assert z.mean().abs() < 0.01
    assert abs(z.var().item() - var) < 0.01
    if kind == "uniform":
        assert z.min() >= -1 and z.max() < 1


def test_unknown_latent_is_refused():
    with pytest.raises(ValueError, match="allowed: normal, uniform"):
        draw_latent(2, 2, "cauchy")
    with pytest.raises(GantricksError, match="latent"):
        prepare({"latent": "cauchy", "device": "cpu"}, plugins=QUIET)


def test_fixed_noise_follows_the_kind():
    u = fixed_noise(8, 3, seed=5, kind="uniform")
    expected = torch.rand(8, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1
    assert torch.equal(u, expected)
    assert torch.equal(fixed_noise(8, 3, seed=5), fixed_noise(8, 3, seed=5, kind="normal"))


class ZSpy:
    def __init__(self) -> None:
        self.z: list[torch.Tensor] = []

    @hookimpl
    def gantricks_discriminator_loss(self, trainer, terms, batch):
        self.z.append(batch.z.clone())


def test_the_trainer_draws_uniform_z_from_its_seeded_stream(tiny):
    spy = ZSpy()
    t, _ = prepare(
        {**tiny, "steps": 2, "latent": "uniform"}, plugins=QUIET, extra_plugins=[(spy, "z")]
    )
    t.fit()
    stream = torch.Generator().manual_seed(tiny["seed"] + 2)
    for z in spy.z:
        assert torch.equal(z, torch.rand(16, tiny["nz"], generator=stream) * 2 - 1)


def test_virtual_batchnorm_reference_follows_the_latent(tiny):
    t, _ = prepare({**tiny, "latent": "uniform"}, plugins=[*QUIET, "virtual_batchnorm"])
    ref = t.generator.reference
    assert ref.min() >= -1 and ref.max() < 1 and ref.min() < -0.9  # not N(0, 1)


class Reshape(nn.Module):
    """A 'generator' that shows its z as a 1×4×4 image (z already in [−1, 1])."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 4, 4)


def test_evaluation_samples_follow_the_latent():
    got = torch.cat(
        [x for _, x in sample_batches(Reshape(), 16, 10, 4, 3, "cpu", latent="uniform")]
    )
    gen = torch.Generator().manual_seed(3)
    z = torch.cat([torch.rand(b, 16, generator=gen) * 2 - 1 for b in (4, 4, 2)])
    assert torch.equal(got, to_uint8(z.view(-1, 1, 4, 4)))
