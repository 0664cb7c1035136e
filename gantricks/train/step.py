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
    """``step(real, z, *extra) -> losses``: one discriminator update, then ``g_steps``
    generator updates, on the trainer's models and optimisers.

    ``extra`` holds what the generator's updates draw anew: with ``generator_batch =
    "fresh"`` a real batch and latent vectors for each update (``gen_real_1, gen_z_1, ...``);
    otherwise latent vectors for each update after the first (the first judges the
    discriminator step's generated batch). The returned dict holds every loss term as a
    0-d device tensor: ``loss_d/<term>``, ``loss_g/<term>`` (the mean over the generator's
    updates), ``loss_d`` and ``loss_g``.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.params = {id(opt): optimised_parameters(opt) for opt in (trainer.opt_d, trainer.opt_g)}
        config = trainer.config
        self.fresh = config.generator_batch == "fresh"
        self.g_steps = config.g_steps
        self.minimax = config.generator_loss == "minimax"

    def __call__(
        self, real: torch.Tensor, z: torch.Tensor, *extra: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        t = self.trainer
        hook = t.hook
        G, D = t.models.generator, t.models.discriminator
        hook.gantricks_step_start(trainer=t, step=t.step)
        with t.autocast():
            # With fresh batches for G's updates, this one needs no graph for backward.
            with torch.set_grad_enabled(not self.fresh):
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

        updates = []
        for k in range(self.g_steps):
            with t.autocast():
                if self.fresh:
                    inputs = {"real": extra[2 * k], "fake": G(extra[2 * k + 1])}
                else:
                    inputs = {"real": real, "fake": fake if k == 0 else G(extra[k - 1])}
                hook.gantricks_discriminator_inputs(
                    trainer=t, inputs=inputs, phase="generator", batch=batch
                )
                batch.gen_real, batch.gen_fake = inputs["real"], inputs["fake"]
                batch.gen_logits, batch.gen_features = D(batch.gen_fake)
                # minimax: log(1 - D(G(z))) = -BCE(logit, 0); non-saturating: BCE(logit, 1)
                adv = (
                    -bce_logits(batch.gen_logits, 0.0)
                    if self.minimax
                    else bce_logits(batch.gen_logits, 1.0)
                )
                g_terms = {"adv": adv}
                hook.gantricks_generator_loss(trainer=t, terms=g_terms, batch=batch)
            loss_g = self._minimise(t.opt_g, g_terms, "loss_g")
            hook.gantricks_after_generator_step(trainer=t)
            updates.append((g_terms, loss_g))

        g_terms, loss_g = updates[0] if len(updates) == 1 else _mean_of(updates)
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


def _mean_of(
    updates: list[tuple[dict[str, torch.Tensor], torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Each generator term's (and the total's) mean over a step's generator updates; a term
    present in only some updates is averaged over all of them."""
    n = len(updates)
    names = list(dict.fromkeys(k for terms, _ in updates for k in terms))
    terms = {
        name: torch.stack([u[name].detach().reshape(()) for u, _ in updates if name in u]).sum() / n
        for name in names
    }
    return terms, torch.stack([loss for _, loss in updates]).mean()
