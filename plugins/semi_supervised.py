"""Semi-supervised learning with a K+1-class discriminator (Salimans et al. 2016, section 5)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

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
def gan_logit(class_logits: torch.Tensor) -> torch.Tensor:
    """The real-vs-fake logit of a K+1 classifier whose fake-class logit is fixed at 0.

    D(x) = Z/(Z+1) with Z = Σ_k exp l_k, so D(x) = sigmoid(log Z) and the logit is
    logsumexp(l): binary cross-entropy on it is −log D(x) (target 1) or −log(1 − D(x))
    (target 0), computed stably as softplus(∓ logsumexp(l)).
    """
    return torch.logsumexp(class_logits.float(), dim=1, keepdim=True)


def supervised_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−log p(y | x, y < K+1) = −l_y + logsumexp(l): cross-entropy over the K real classes."""
    return F.cross_entropy(class_logits.float(), labels)


# --------------------------------------------------------- the paper's MNIST model
class WNLinear(nn.Module):
    """Weight-normalised linear layer: w_j = g_j · v_j / ‖v_j‖ (Salimans & Kingma 2016).

    With ``train_scale=False`` (the paper's hidden layers) g is set once by the
    data-dependent initialisation and then kept fixed: it is a buffer, not a parameter.
    """

    def __init__(
        self, n_in: int, n_out: int, train_scale: bool = True, init_std: float = 0.1
    ) -> None:
        super().__init__()
        # v's scale sets how far an Adam step turns the direction v/‖v‖, so it follows the
        # authors' initialisation: N(0, 0.1²) in D, Glorot's scale in G's output layer.
        self.v = nn.Parameter(torch.randn(n_out, n_in) * init_std)
        if train_scale:
            self.g = nn.Parameter(torch.ones(n_out))
        else:
            self.register_buffer("g", torch.ones(n_out))
        self.b = nn.Parameter(torch.zeros(n_out))
        self.initialising = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.initialising:
            # Data-dependent init: this batch's pre-activations get zero mean and unit std.
            with torch.no_grad():
                t = F.linear(x, self.v / self.v.norm(dim=1, keepdim=True))
                mean, std = t.mean(0), t.std(0, unbiased=False) + 1e-8
                self.g.copy_(1.0 / std)
                self.b.copy_(-mean / std)
            self.initialising = False
        # g·v/‖v‖ row-wise in one fused kernel (what torch's weight_norm parametrisation uses).
        return F.linear(x, torch._weight_norm(self.v, self.g.unsqueeze(1), 0), self.b)


class GaussianNoise(nn.Module):
    """x + N(0, σ²) noise in training mode; identity in evaluation mode."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        return torch.add(x, torch.randn_like(x), alpha=self.sigma)


class ToUnitRange(nn.Module):
    """Images in [−1, 1] → flat vectors in [0, 1], the scale the paper's noise σ refers to."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).add(1.0).mul(0.5)


def mlp_trunk(n_in: int) -> nn.Sequential:
    """The paper's MNIST discriminator up to its last hidden layer (the matched features):
    noise σ=0.3 on the input, then 1000-500-250-250-250 weight-normalised ReLU layers,
    each with noise σ=0.5 on its input."""
    layers: list[nn.Module] = [ToUnitRange(), GaussianNoise(0.3)]
    widths = [n_in, 1000, 500, 250, 250, 250]
    for i, (a, b) in enumerate(pairwise(widths)):
        if i > 0:
            layers.append(GaussianNoise(0.5))
        layers += [WNLinear(a, b, train_scale=False), nn.ReLU()]
    return nn.Sequential(*layers)


class ShiftOnlyBatchNorm(nn.Module):
    """Batch norm with a learned shift and no learned scale (the paper's generator)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n, affine=False)
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.bias


class MLPGenerator(nn.Module):
    """The paper's MNIST generator: z → 500 → 500 (softplus, batch norm) → weight-normalised
    sigmoid output, mapped to [−1, 1] like every gantricks generator."""

    def __init__(self, nz: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.nz, self.channels, self.image_size = nz, channels, image_size
        n_out = channels * image_size * image_size
        self.net = nn.Sequential(
            nn.Linear(nz, 500, bias=False),
            ShiftOnlyBatchNorm(500),
            nn.Softplus(),
            nn.Linear(500, 500, bias=False),
            ShiftOnlyBatchNorm(500),
            nn.Softplus(),
            WNLinear(500, n_out, train_scale=True, init_std=(2 / (500 + n_out)) ** 0.5),
        )
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)  # Lasagne's default, as the authors' code

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.sigmoid(self.net(z.flatten(1))) * 2 - 1
        return x.view(-1, self.channels, self.image_size, self.image_size)


# ------------------------------------------------------------------ the discriminator
class KPlusOneDiscriminator(nn.Module):
    """features (trunk) → K class logits (head); returns (logsumexp logit, features).

    The trainer's binary cross-entropy on the returned logit is the paper's unsupervised
    loss; ``classify`` gives the K logits for the supervised loss and for testing.
    """

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.feature_dim = feature_dim

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return gan_logit(self.head(h)), h


class Config(PluginConfig):
    labels_per_class: int = Field(10, gt=0, description="labelled examples per class")
    label_seed: int | None = Field(
        None, description="seed of the labelled subset (none: the run's seed)"
    )
    model: Literal["mlp", "dcgan"] = Field(
        "mlp",
        description="mlp: the paper's MNIST networks (weight norm, Gaussian noise); "
        "dcgan: the DCGAN pair with a K-class head",
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
    init_examples: int = Field(
        500, gt=0, description="training images for weight norm's data-dependent init"
    )
    bn_examples: int = Field(
        1000,
        gt=0,
        description="model=dcgan: training images whose batch-norm statistics D is "
        "tested with (training's running statistics also count generated images)",
    )


class SemiSupervised(Plugin):
    """Semi-supervised K+1 GAN: D classifies K classes, generated images are class K+1.

    Salimans et al. (2016), section 5. The fake class's logit is fixed at 0, so
    D(x) = Z/(Z+1), Z = Σ_k exp l_k (logsumexp, stable). D minimises the supervised
    cross-entropy on a seeded, class-balanced labelled subset plus the usual unsupervised
    GAN loss; G is trained by feature matching (add the feature_matching plugin, as
    ``gantricks train --semi-supervised`` does). Test error on the test split, with D's
    parameters averaged over training as in the authors' code, is logged as
    ``ssl/test_errors`` (and with the current D as ``ssl/test_errors_current_d``) and
    written to ``ssl.json`` in the run folder. With ``model=dcgan`` D is tested with
    batch-norm statistics of real training images under the parameters being tested.
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
                f"semi_supervised needs a labelled dataset; {config.dataset!r} has no class "
                f"labels; allowed: {', '.join(NUM_CLASSES)}"
            )
        self.num_classes = k
        d = models.discriminator
        if self.config.model == "mlp":
            g = models.generator
            n_in = g.channels * g.image_size * g.image_size
            models.generator = MLPGenerator(models.nz, g.channels, g.image_size)
            head = nn.Sequential(GaussianNoise(0.5), WNLinear(250, k, train_scale=True))
            models.discriminator = KPlusOneDiscriminator(mlp_trunk(n_in), head, 250)
        else:
            head = nn.Linear(d.feature_dim, k)
            nn.init.normal_(head.weight, 0.0, 0.02)
            nn.init.zeros_(head.bias)
            models.discriminator = KPlusOneDiscriminator(d.features, head, d.feature_dim)

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        data, cfg = trainer.data, trainer.config
        if data.labels is None:
            raise GantricksError(f"semi_supervised: dataset {cfg.dataset!r} has no labels")
        seed = cfg.seed if self.config.label_seed is None else self.config.label_seed
        self.indices = balanced_subset(
            data.labels, self.config.labels_per_class, self.num_classes, seed
        )
        self.images = data.images[self.indices].to(trainer.device)
        self.labels = data.labels[self.indices].to(trainer.device)
        self.set_labelled_batch(self.config.labelled_batch or cfg.batch_size)
        test = load_dataset(
            cfg.dataset, cfg.data_dir, data.image_size, train=False, download=cfg.download
        )
        self.test_images = test.images.to(trainer.device)
        self.test_labels = test.labels.to(trainer.device)
        if trainer.step == 0 and self.config.model == "mlp":
            self._data_dependent_init(trainer)
        self.params = [p for p in trainer.discriminator.parameters() if p.requires_grad]
        self.average = [torch.zeros_like(p) for p in self.params]
        self._averaged = torch.zeros((), device=trainer.device)

    def _data_dependent_init(self, trainer: Trainer) -> None:
        n = min(self.config.init_examples, len(trainer.data))
        x = to_float(trainer.data.images[:n].to(trainer.device))
        layers = [m for m in trainer.discriminator.modules() if isinstance(m, WNLinear)]
        for m in layers:
            m.initialising = True
        with torch.no_grad():
            # classify(), not D's __call__: that one may be compiled (--set compile=true),
            # and this runs before the compiled step's fallback could catch a failure.
            trainer.discriminator.classify(x)

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
            warnings.warn(f"semi_supervised: no test error at the stop: {e}", stacklevel=2)

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
                        "model": self.config.model,
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
                "semi_supervised: the checkpoint was trained on a different labelled subset "
                "(labels_per_class or label_seed differ); resume with the same options"
            )
        self.history = list(state["history"])
        torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])
        self._averaged.fill_(int(state["averaged_steps"]))


def _errors(confusion: torch.Tensor) -> int:
    """Off-diagonal total of a confusion matrix."""
    return int(confusion.sum() - confusion.diagonal().sum())
