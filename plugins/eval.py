"""Periodic evaluation: scores logged during training, best checkpoint kept as best.pt."""

from __future__ import annotations

import math
import warnings
from typing import Any

from pydantic import Field

from gantricks import (
    CLASSIFIER_DATASETS,
    METRICS,
    EvalSettings,
    Evaluator,
    GantricksError,
    Plugin,
    PluginConfig,
    RunConfig,
    Trainer,
    eval_scalars,
    hookimpl,
    main_first,
    write_eval_outputs,
)


class Config(PluginConfig):
    every: int = Field(2000, ge=0, description="steps between evaluations (0: end only)")
    metrics: list[str] = Field(["auto"], description="auto, or any of: is, fid, kid, classifier")
    num_samples: int = Field(5000, gt=0, description="samples per evaluation")
    batch_size: int = Field(500, gt=0, description="samples generated and scored at once")
    best: str | None = Field(None, description="metric that picks best.pt (default: first)")
    inception_weights: str | None = Field(None, description="path, for offline IS/FID/KID")


class Eval(Plugin):
    """Periodic evaluation: scores logged during training, best checkpoint kept as best.pt.

    With the default ``metrics=["auto"]`` it scores glyphs, MNIST, Fashion-MNIST and Stacked
    MNIST runs with gantricks' in-domain classifier (offline) and does nothing for other
    datasets, whose Inception-based metrics need downloaded weights: ask for them with
    ``--set eval.metrics='["is","fid"]'``. Samples come from the run's sampling generator
    (``gantricks_sampling_generator``).
    """

    Config = Config
    evaluator: Evaluator | None = None
    best_value: float | None = None
    best_metric: str | None = None
    metrics: tuple[str, ...] = ()

    @hookimpl
    def gantricks_configure(self, config: RunConfig) -> None:
        metrics = self.config.metrics
        if metrics == ["auto"]:
            metrics = ["classifier"] if config.dataset in CLASSIFIER_DATASETS else []
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise GantricksError(
                f"eval.metrics has unknown metric(s) {', '.join(bad)}; allowed: auto or "
                f"{', '.join(METRICS)}"
            )
        best = self.config.best or (metrics[0] if metrics else None)
        if best is not None and best not in metrics:
            raise GantricksError(f"eval.best={best!r} is not one of eval.metrics {metrics}")
        self.metrics = tuple(metrics)
        self.best_metric = best
        if best is not None:
            # On Stacked MNIST the classifier metric stands for modes covered, not a score.
            self.headline = METRICS[best].headline(config.dataset)

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        if not self.metrics:
            return
        settings = EvalSettings(
            metrics=list(self.metrics),
            num_samples=self.config.num_samples,
            batch_size=self.config.batch_size,
            inception_weights=self.config.inception_weights,
            progress=False,
            seed=trainer.config.seed,
        )
        # Rank 0 first: it may download or build something the others then find cached.
        self.evaluator = main_first(
            lambda: Evaluator(
                settings,
                trainer.config.dataset,
                trainer.config.data_dir,
                trainer.data.image_size,
                trainer.device,
                download=trainer.config.download,
            ),
            "set up evaluation",
        )

    def _evaluate(self, trainer: Trainer) -> None:
        assert self.evaluator is not None
        dist, c = trainer.dist, trainer.config
        # Every rank samples and scores its share; rank 0 gets the scores, logs and saves.
        result = self.evaluator.evaluate(
            trainer.sampling_generator, c.nz, dist.rank, dist.world_size, latent=c.latent
        )
        if result is None:
            return
        result["step"] = trainer.step
        write_eval_outputs(result, trainer.run_dir / "eval", stem=f"step_{trainer.step:07d}")
        values = eval_scalars(result)
        for name, value in values.items():
            self.log(name, value)
        name, higher = self.headline
        value = values[f"eval/{name}"]
        if self.best_value is None or (
            value > self.best_value if higher else value < self.best_value
        ):
            if not math.isfinite(value) or not trainer.parameters_finite():
                # Not a best: the weights went bad. The loss check at the next log step
                # stops the run on every rank; raising here would stop rank 0 alone.
                warnings.warn(
                    f"step {trainer.step}: non-finite weights or score, best.pt not saved",
                    stacklevel=2,
                )
                return
            self.best_value = value
            # Finiteness was read just above: one host read, not two.
            trainer.save_checkpoint(trainer.run_dir / "checkpoints" / "best.pt", False)

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        # The last step is always scored, so every completed run ends with its scores.
        due = self.every(self.config.every, step) or step == trainer.total_steps
        if self.evaluator is not None and due:
            self._evaluate(trainer)

    def state_dict(self) -> dict[str, Any] | None:
        if self.best_value is None:
            return None
        return {"best_value": self.best_value, "best_metric": self.best_metric}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("best_metric") == self.best_metric:
            self.best_value = float(state["best_value"])
