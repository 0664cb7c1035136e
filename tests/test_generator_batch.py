"""generator_batch: G's update on the D step's batch ("same") or on its own ("fresh")."""

from __future__ import annotations

import copy

import pytest
import torch

from gantricks import hookimpl
from gantricks.data import BatchSampler
from gantricks.run import prepare
from gantricks.sampling import batch_statistics
from gantricks_plugins.feature_matching import feature_matching_loss

from .conftest import QUIET


class Spy:
    """Keeps what the generator-loss hook saw, after every other plugin added its term."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    @hookimpl(trylast=True)
    def gantricks_generator_loss(self, trainer, terms, batch):
        # A copy: touching D's batch-norm buffers would break the pending backward pass.
        D = copy.deepcopy(trainer.discriminator)
        with torch.no_grad():
            _, f_gen_real = D(batch.gen_real)
            _, f_real = D(batch.real)
        self.seen.append(
            {
                "batch": batch,
                "terms": {k: v.detach().clone() for k, v in terms.items()},
                "f_gen_real": f_gen_real,
                "f_real": f_real,
            }
        )


def _run(tiny, generator_batch, plugins=QUIET, steps=3, **options):
    spy = Spy()
    trainer, _ = prepare(
        {**tiny, "steps": steps, "generator_batch": generator_batch, **options},
        plugins=plugins,
        extra_plugins=[(spy, "spy")],
    )
    trainer.fit()
    return trainer, spy


def test_same_batch_is_the_discriminator_steps(tiny):
    trainer, spy = _run(tiny, "same")
    assert trainer.gen_sampler is None
    for seen in spy.seen:
        b = seen["batch"]
        assert b.gen_real is b.real and b.gen_fake is b.fake
        assert b.fake.requires_grad


def test_fresh_batch_has_its_own_z_and_its_own_shuffle(tiny):
    trainer, spy = _run(tiny, "fresh", steps=1)
    b = spy.seen[0]["batch"]
    # z: the run's noise stream gives the D step's z first, then G's.
    noise = torch.Generator().manual_seed(tiny["seed"] + 2)
    z = torch.randn(16, tiny["nz"], generator=noise)
    gen_z = torch.randn(16, tiny["nz"], generator=noise)
    assert torch.equal(b.z, z)
    assert not b.fake.requires_grad and b.gen_fake.requires_grad
    assert not torch.allclose(b.gen_fake, b.fake)
    # The real batch: the first of a second sampler over the same images, seeded seed + 4.
    second = BatchSampler(trainer.data.images, 16, seed=tiny["seed"] + 4)
    assert torch.equal(b.gen_real, second.next())
    assert not torch.equal(b.gen_real, b.real)
    # Epochs count the discriminator's batches only.
    assert trainer.sampler.epochs_done == 1 / trainer.sampler.batches_per_epoch
    # gen_fake is G(gen_z) before G's update (G is unchanged by the D step).
    fresh, _ = prepare({**tiny, "steps": 1, "name": "check"}, plugins=QUIET)
    with torch.no_grad(), batch_statistics(fresh.generator):
        expected = fresh.generator(gen_z)
    assert torch.allclose(b.gen_fake.detach(), expected, atol=1e-6)


@pytest.mark.parametrize("generator_batch", ["same", "fresh"])
def test_feature_matching_compares_with_the_generators_real_batch(tiny, generator_batch):
    # Each batch normalised by its own statistics, so f(real) is D's output on it alone.
    fm = {"normalisation": "separate"}
    _, spy = _run(tiny, generator_batch, [*QUIET, "feature_matching"], feature_matching=fm)
    for seen in spy.seen:
        b, fm = seen["batch"], seen["terms"]["feature_matching"]
        expected = feature_matching_loss(seen["f_gen_real"], b.gen_features.detach())
        assert torch.allclose(fm, expected, rtol=1e-5, atol=1e-7)
        if generator_batch == "fresh":  # and not with the D step's real batch
            other = feature_matching_loss(seen["f_real"], b.gen_features.detach())
            assert not torch.allclose(fm, other, rtol=1e-3)
