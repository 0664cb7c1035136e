"""One training step of the GAN, as one callable that returns its losses.

The discriminator sees the real and the generated batch separately (so each minibatch is
all-real or all-generated, as batch norm and minibatch discrimination expect) and
minimises the sum of its loss terms; the updated discriminator then judges the generated
batch again (or a fresh one) and the generator minimises the sum of its loss terms, the
non-saturating loss by default. Every trick enters through a hook; everything stays on the
device.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from gantricks.contract import StepBatch, TrainerAPI
from gantricks.errors import GantricksError
from gantricks.train.optim import optimised_parameters


class Trainer(TrainerAPI, Protocol):
    """What a step uses of the trainer: the plugins' view, and its hooks."""

    hook: Any


def bce_logits(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant or per-example target."""
    if not isinstance(target, torch.Tensor):
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits))


class GanStep:
    """``step(real, z[, gen_real, gen_z]) -> losses``: one discriminator update, then one
    generator update, on the trainer's models and optimisers.

    ``gen_real`` and ``gen_z`` (``generator_batch = "fresh"``) give the generator's update
    its own real batch and latent vectors. The returned dict holds every loss term as a
    0-d device tensor: ``loss_d/<term>``, ``loss_g/<term>``, ``loss_d`` and ``loss_g``.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.params = {id(opt): optimised_parameters(opt) for opt in (trainer.opt_d, trainer.opt_g)}

    def __call__(
        self,
        real: torch.Tensor,
        z: torch.Tensor,
        gen_real: torch.Tensor | None = None,
        gen_z: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        t = self.trainer
        hook = t.hook
        G, D = t.models.generator, t.models.discriminator
        hook.gantricks_step_start(trainer=t, step=t.step)
        fresh = gen_z is not None
        with t.autocast():
            # With a fresh batch for G's update, this one needs no graph for backward.
            with torch.set_grad_enabled(not fresh):
                fake = G(z)
            batch = StepBatch(real=real, z=z, fake=fake)
            targets = hook.gantricks_discriminator_targets(trainer=t, batch=batch)
            if targets is not None:
                batch.real_target, batch.fake_target = targets
            inputs = {"real": real, "fake": fake.detach()}
            hook.gantricks_discriminator_inputs(
                trainer=t, inputs=inputs, phase="discriminator", batch=batch
            )
            batch.d_real, batch.d_fake = inputs["real"], inputs["fake"]
            batch.real_logits, batch.real_features = D(batch.d_real)
            batch.fake_logits, batch.fake_features = D(batch.d_fake)
            d_terms = {
                "real": bce_logits(batch.real_logits, batch.real_target),
                "fake": bce_logits(batch.fake_logits, batch.fake_target),
            }
            hook.gantricks_discriminator_loss(trainer=t, terms=d_terms, batch=batch)
        loss_d = self._minimise(t.opt_d, d_terms, "loss_d")
        hook.gantricks_after_discriminator_step(trainer=t)

        with t.autocast():
            if fresh:
                assert gen_real is not None and gen_z is not None
                inputs = {"real": gen_real, "fake": G(gen_z)}
            else:
                inputs = {"real": real, "fake": fake}
            hook.gantricks_discriminator_inputs(
                trainer=t, inputs=inputs, phase="generator", batch=batch
            )
            batch.gen_real, batch.gen_fake = inputs["real"], inputs["fake"]
            batch.gen_logits, batch.gen_features = D(batch.gen_fake)
            g_terms = {"adv": bce_logits(batch.gen_logits, 1.0)}
            hook.gantricks_generator_loss(trainer=t, terms=g_terms, batch=batch)
        loss_g = self._minimise(t.opt_g, g_terms, "loss_g")
        hook.gantricks_after_generator_step(trainer=t)

        return {
            **{f"loss_d/{k}": v.detach() for k, v in d_terms.items()},
            **{f"loss_g/{k}": v.detach() for k, v in g_terms.items()},
            "loss_d": loss_d,
            "loss_g": loss_g,
        }

    def _minimise(
        self, opt: torch.optim.Optimizer, terms: dict[str, torch.Tensor], prefix: str
    ) -> torch.Tensor:
        if not terms:
            raise GantricksError(f"{prefix}: every loss term was removed by plugins")
        loss = torch.stack([t.reshape(()) for t in terms.values()]).sum()
        opt.zero_grad(set_to_none=True)
        params = self.params[id(opt)]
        # Gradients only for this player's parameters: the generator's backward pass then
        # skips the discriminator's weight gradients, which nothing would use.
        loss.backward(inputs=params)
        self.trainer.dist.average_gradients(params)
        opt.step()
        return loss.detach()
