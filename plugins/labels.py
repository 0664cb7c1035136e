"""Labels as a trick: a K+1-class discriminator trained with the run's labels (Salimans et al.
2016, sections 5 and 6: the "L" of their CIFAR-10 ablation, and semi-supervised learning
with a few labels)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from gantricks import (
    NUM_CLASSES,
    GantricksError,
    Models,
    Plugin,
    PluginConfig,
    RunConfig,
    StepBatch,
    Trainer,
    atomic_write_text,
    balanced_subset,
    hookimpl,
    load_dataset,
    running_statistics_from,
    to_float,
)


# ------------------------------------------------------------------------- the losses
def supervised_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−log p(y | x, y < K+1) = −l_y + logsumexp(l): cross-entropy over the K real classes."""
    return F.cross_entropy(class_logits.float(), labels)


class Config(PluginConfig):
    labels_per_class: int | None = Field(
        None, gt=0, description="labelled examples per class (none: every training label)"
    )
    label_seed: int | None = Field(
        None, description="seed of the labelled subset (none: the run's seed)"
    )
    supervised_weight: float = Field(
        2.0,
        ge=0,
        description="weight of the supervised term; 2 keeps the paper's ratio, whose "
        "unsupervised loss is half the sum of gantricks' real and fake terms",
    )
    labelled_batch: int | None = Field(
        None, gt=0, description="labelled examples per step (none: the batch size)"
    )
    labelled_sampling: Literal["cycle", "replacement"] = Field(
        "cycle",
        description="cycle: each step takes every labelled example labelled_batch // N "
        "times and the rest without replacement (the authors' code: with 100 labels and "
        "batch 100, the whole labelled set every step); replacement: uniform draws",
    )
    eval_every: int = Field(1000, ge=0, description="steps between test-error evaluations")
    average_rate: float = Field(
        1e-4,
        ge=0,
        lt=1,
        description="test with an exponential moving average of D's parameters at this "
        "rate per step, as the authors' code (0: test the current D)",
    )
    bn_examples: int = Field(
        1000,
        gt=0,
        description="for a D with batch norm (model=dcgan): training images whose "
        "statistics D is tested with (training's running statistics also count "
        "generated images)",
    )


class Labels(Plugin):
    """Labels: D classifies the K classes, generated images are class K+1.

    Salimans et al. (2016), sections 5 and 6. The fake class's logit is fixed at 0, so
    D(x) = Z/(Z+1), Z = Σ_k exp l_k (the head has K outputs and the trainer's loss reads
    their logsumexp, stably). D minimises the supervised cross-entropy on the labelled
    examples — every training label, or a seeded, class-balanced subset of
    ``labels_per_class`` per class — plus the usual unsupervised GAN loss. It composes with
    every other trick (minibatch discrimination's features sit before the K-class head).
    ``gantricks train --semi-supervised`` adds feature matching for G and the authors'
    MNIST settings. Test error on the test split, with D's parameters averaged over
    training as in the authors' code, is logged as ``ssl/test_errors`` (and with the
    current D as ``ssl/test_errors_current_d``) and written to ``ssl.json`` in the run
    folder. A D with batch norm is tested with statistics of real training images under
    the parameters being tested.
    """

    Config = Config

    #: Step hooks are device work only: a CUDA graph of the step may replay them.
    graph_safe = True

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self.history: list[dict[str, Any]] = []
        self.average: list[torch.Tensor] = []
        self._averaged = torch.zeros(())  # steps averaged, on the device (CUDA-graph safe)

    @hookimpl
    def gantricks_build_models(self, models: Models, config: RunConfig) -> None:
        k = NUM_CLASSES.get(config.dataset)
        if k is None:
            raise GantricksError(
                f"labels needs a labelled dataset; {config.dataset!r} has no class labels; "
                f"allowed: {', '.join(NUM_CLASSES)}"
            )
        d = models.discriminator
        if not hasattr(d, "set_classes"):
            raise GantricksError(
                f"labels needs a discriminator that can take K classes (every gantricks "
                f"model's can); model {config.model!r} built a {type(d).__name__}"
            )
        self.num_classes = k
        d.set_classes(k)

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        data, cfg = trainer.data, trainer.config
        if data.labels is None:
            raise GantricksError(f"labels: dataset {cfg.dataset!r} has no labels")
        seed = cfg.seed if self.config.label_seed is None else self.config.label_seed
        per_class = self.config.labels_per_class
        self.indices = (
            torch.arange(len(data.labels))
            if per_class is None
            else balanced_subset(data.labels, per_class, self.num_classes, seed)
        )
        self.images = data.images[self.indices].to(trainer.device)
        self.labels = data.labels[self.indices].to(trainer.device)
        self.set_labelled_batch(self.config.labelled_batch or cfg.batch_size)
        test = load_dataset(
            cfg.dataset, cfg.data_dir, data.image_size, train=False, download=cfg.download
        )
        self.test_images = test.images.to(trainer.device)
        self.test_labels = test.labels.to(trainer.device)
        self.params = [p for p in trainer.discriminator.parameters() if p.requires_grad]
        self.average = [torch.zeros_like(p) for p in self.params]
        self._averaged = torch.zeros((), device=trainer.device)

    @hookimpl
    def gantricks_discriminator_loss(
        self, trainer: Trainer, terms: dict[str, torch.Tensor], batch: StepBatch
    ) -> None:
        # The global generator (saved in checkpoints by the trainer): unlike a generator of
        # the plugin's own, it may be used inside a CUDA graph of the step.
        idx = self.labelled_indices()
        x = to_float(self.images[idx])
        if trainer.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = trainer.discriminator.classify(x)
        loss = supervised_loss(logits, self.labels[idx])
        terms["supervised"] = self.config.supervised_weight * loss

    def set_labelled_batch(self, batch: int) -> None:
        """Labelled examples per step; under "cycle" the whole copies of the labelled set
        in every batch are fixed, so they are made once, not per step."""
        self.batch = batch
        n = len(self.labels)
        self.whole = torch.arange(n, device=self.labels.device).repeat(batch // n)

    def labelled_indices(self) -> torch.Tensor:
        """This step's rows of the labelled set (device tensor, no host read)."""
        n, device = len(self.labels), self.labels.device
        if self.config.labelled_sampling == "replacement":
            return torch.randint(n, (self.batch,), device=device)
        rest = self.batch % n
        if rest == 0:
            return self.whole
        # A random subset without replacement: the ranks of uniform keys (rand and argsort
        # are both safe to replay in a CUDA graph, unlike a host-side permutation).
        extra = torch.rand(n, device=device).argsort()[:rest]
        return torch.cat([self.whole, extra])

    @hookimpl
    @torch.no_grad()
    def gantricks_after_discriminator_step(self) -> None:
        # avg ← avg + rate·(θ − avg) from zero, as the authors' code; tested debiased below.
        if self.config.average_rate > 0:
            torch._foreach_lerp_(self.average, self.params, self.config.average_rate)
            self._averaged += 1

    @property
    def averaged_steps(self) -> int:
        """Steps averaged so far (reads the device: for evaluation and checkpoints)."""
        return int(self._averaged)

    @contextmanager
    def averaged_parameters(self) -> Iterator[None]:
        """D's parameters replaced by their moving average, divided by 1 − (1 − rate)^steps
        (the weight the zero start still holds, as Adam debiases its moments)."""
        rate, n = self.config.average_rate, self.averaged_steps
        if rate == 0 or n == 0:
            yield
            return
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            debias = 1.0 / (1.0 - (1.0 - rate) ** n)
            torch._foreach_copy_(self.params, torch._foreach_mul(self.average, debias))
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, saved)

    @torch.no_grad()
    def test_confusion(self, trainer: Trainer) -> torch.Tensor:
        """Confusion matrix on the test split (rows: true class, columns: predicted), with
        D in evaluation mode (no noise); batch norm, where D has it (``model=dcgan``), uses
        statistics of the first ``bn_examples`` training images under these parameters.
        On the host."""
        d, k = trainer.discriminator, self.num_classes
        n = min(self.config.bn_examples, len(trainer.data))
        real = (
            to_float(trainer.data.images[i : min(i + 100, n)].to(trainer.device))
            for i in range(0, n, 100)
        )
        counts = torch.zeros(k * k, dtype=torch.long, device=trainer.device)
        with running_statistics_from(d, real):
            for start in range(0, len(self.test_labels), 1000):
                x = to_float(self.test_images[start : start + 1000])
                with trainer.autocast():
                    pred = d.classify(x).argmax(1)
                true = self.test_labels[start : start + 1000].long()
                counts += torch.bincount(true * k + pred, minlength=k * k)
        return counts.view(k, k).cpu()  # the only host read, once per evaluation

    def test_errors(self, trainer: Trainer) -> int:
        """Misclassified test images (see :meth:`test_confusion`)."""
        return _errors(self.test_confusion(trainer))

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        if self.every(self.config.eval_every, step) or step == trainer.total_steps:
            self.evaluate(trainer, step)

    @hookimpl(trylast=True)  # after the checkpoint plugin has saved the interrupted run
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        # A run stopped early (Ctrl-C, benchmarks/seeds.py --seconds) still reports the D it
        # stopped with, in ssl.json. The checkpoint is saved first, so a failure here (or a
        # second Ctrl-C) cannot cost it; its history ends at the last regular evaluation.
        last = self.history[-1]["step"] if self.history else 0
        if reason != "interrupted" or trainer.step <= last:
            return
        try:
            self.evaluate(trainer, trainer.step)
        except Exception as e:
            warnings.warn(f"labels: no test error at the stop: {e}", stacklevel=2)

    def evaluate(self, trainer: Trainer, step: int) -> None:
        """Test errors of the averaged and the current D; logged and written to ssl.json."""
        current = self.test_errors(trainer)
        with self.averaged_parameters():
            confusion = self.test_confusion(trainer)
        errors, n = _errors(confusion), len(self.test_labels)
        per_class = (confusion.sum(1) - confusion.diagonal()).tolist()
        self.log("ssl/test_errors", float(errors))
        self.log("ssl/test_error_pct", 100 * errors / n)
        self.log("ssl/test_errors_current_d", float(current))
        self.history.append(
            {"step": step, "test_errors": errors, "current_d": current, "per_class": per_class}
        )
        if trainer.dist.is_main:
            atomic_write_text(
                trainer.run_dir / "ssl.json",
                json.dumps(
                    {
                        "dataset": trainer.config.dataset,
                        "labels": len(self.indices),
                        "labels_per_class": self.config.labels_per_class,
                        "model": trainer.config.model,
                        "test_images": n,
                        "step": step,
                        "test_errors": errors,
                        "test_errors_current_d": current,
                        "average_rate": self.config.average_rate,
                        # The averaged D's errors by true class, and where they went: a
                        # poor seed's excess can sit in one class its few labels depict badly.
                        "per_class_errors": per_class,
                        "confusion": confusion.tolist(),
                        "labelled_indices": self.indices.tolist(),
                        "history": self.history,
                    },
                    indent=1,
                ),
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "indices": self.indices.cpu(),
            "history": self.history,
            "average": [a.clone() for a in self.average],
            "averaged_steps": self.averaged_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not torch.equal(state["indices"], self.indices.cpu()):
            raise GantricksError(
                "labels: the checkpoint was trained on a different labelled subset "
                "(labels_per_class or label_seed differ); resume with the same options"
            )
        self.history = list(state["history"])
        torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])
        self._averaged.fill_(int(state["averaged_steps"]))


def _errors(confusion: torch.Tensor) -> int:
    """Off-diagonal total of a confusion matrix."""
    return int(confusion.sum() - confusion.diagonal().sum())
