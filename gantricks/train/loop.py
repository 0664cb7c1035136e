"""The DCGAN training run: set-up, then a loop that reads top to bottom.

Set-up builds the models (plugins may change them), moves them and the data to the device,
makes the optimisers and the step, and wraps the step once (compile, CUDA graph) with the
same call. The loop draws a batch, takes a step, runs the end-of-step hooks and, every
``log_every`` steps, reads the averaged losses back from the device: the only host read.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gantricks import checkpoint, distributed, files
from gantricks.config import RunConfig, to_json
from gantricks.data import BatchSampler, ImageData
from gantricks.device import resolve_device
from gantricks.errors import GantricksError, PluginError, TrainingStopped, WriteError
from gantricks.models import Models, build_models
from gantricks.plugin_manager import PluginManager
from gantricks.sampling import draw_latent, fixed_noise, generate
from gantricks.train import cuda_graph, metrics_file, schedule, state
from gantricks.train.compiled import CompiledStep
from gantricks.train.interrupt import graceful_interrupt
from gantricks.train.loss_window import LossWindow
from gantricks.train.optim import adam
from gantricks.train.step import GanStep

#: Length of a run when neither steps nor epochs is given (glyphs: ~2,300 steps, minutes on a CPU).
DEFAULT_EPOCHS = 5.0


class Trainer:
    """A DCGAN training run: models, optimisers, data, plugins and the loop.

    Plugins see it as :class:`gantricks.TrainerAPI` (every hook's ``trainer``).
    """

    def __init__(
        self, config: RunConfig, plugins: PluginManager, data: ImageData, run_dir: str | Path
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.hook = plugins.hook
        self.data = data
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.step = 0
        self.step_complete = True
        self.stop_requested = False
        self._agreed_stop = False  # multi-process: all ranks stop after the same step
        #: Set by :func:`gantricks.run.prepare` for a new run: gives the folder back when
        #: the run is refused before its first step; returns whether it did.
        self.release_folder: Callable[[], bool] | None = None
        self._folder_released = False
        self.steps_per_epoch = len(data) // (config.batch_size * self.dist.world_size)
        self.total_steps = self._total_steps()
        self.hook.gantricks_configure(config=config)

        torch.manual_seed(config.seed)
        self.models: Models = build_models(
            config.nz, data.channels, data.image_size, config.ngf, config.ndf, config.model
        )
        self.hook.gantricks_build_models(models=self.models, config=config)
        if config.sync_bn and self.dist.enabled:
            distributed.convert_batchnorm(self.models.generator)
            distributed.convert_batchnorm(self.models.discriminator)
        self.models.to(self.device)
        if config.channels_last:
            for m in (self.models.generator, self.models.discriminator):
                m.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        self.graph_wanted = self._graph_possible()
        self.opt_g = adam(self.models.generator, config.lr_g, config, self.graph_wanted)
        self.opt_d = adam(self.models.discriminator, config.lr_d, config, self.graph_wanted)

        images = data.images.to(self.device)
        d = self.dist
        self.sampler = BatchSampler(
            images, config.batch_size, config.seed + 1, d.rank, d.world_size
        )
        # generator_batch = "fresh": G's update takes its real batch from a second,
        # independent shuffle of the same images (the authors' trainx_unl2).
        self.gen_sampler = (
            BatchSampler(images, config.batch_size, config.seed + 4, d.rank, d.world_size)
            if config.generator_batch == "fresh"
            else None
        )
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 2)

        step: Callable[..., dict[str, torch.Tensor]] = GanStep(self)
        if config.compile:
            players = (self.models.generator, self.models.discriminator)
            step = CompiledStep(step, players, self.state_dict, self._restore)
        if self.graph_wanted:
            step = cuda_graph.CudaGraphStep(step, self.device)
        #: One training step: ``step_fn(real, z, *extra) -> loss terms`` (see GanStep).
        self.step_fn = step
        self._decays = schedule.decays(config)
        self.window = LossWindow()
        self.last_scalars: dict[str, float] = {}
        self._preview_key: tuple[int, int] | None = None
        self._preview = torch.empty(0)

    def _total_steps(self) -> int:
        if self.config.steps is not None:
            return self.config.steps
        epochs = self.config.epochs if self.config.epochs is not None else DEFAULT_EPOCHS
        # Rounded first: 1.1 epochs × 100 batches is 110.00000000000001 in floating point.
        return max(1, math.ceil(round(epochs * self.steps_per_epoch, 6)))

    def _graph_possible(self) -> bool:
        """Whether ``cuda_graph`` can be honoured; if asked for and not, say why, once."""
        if not self.config.cuda_graph:
            return False
        reason = cuda_graph.why_not(self.config, self.device, self.dist, self.plugins)
        if reason:
            warnings.warn(
                f"cuda_graph=true is ignored: {reason}; the step runs eagerly", stacklevel=3
            )
        return not reason

    # ------------------------------------------------------------- what plugins use
    @property
    def generator(self) -> nn.Module:
        return self.models.generator

    @property
    def discriminator(self) -> nn.Module:
        return self.models.discriminator

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator samples are drawn from (``gantricks_sampling_generator``)."""
        chosen = self.hook.gantricks_sampling_generator(models=self.models)
        return chosen if chosen is not None else self.models.generator

    def sample_z(self, n: int) -> torch.Tensor:
        """Latent vectors from the run's seeded noise generator (part of the checkpoint)."""
        return draw_latent(
            n, self.config.nz, self.config.latent, generator=self.noise, device=self.device
        )

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images for ``z`` without side effects on training state (see sampling.generate)."""
        return generate(self.sampling_generator, z.to(self.device))

    def preview(self, n: int = 64) -> torch.Tensor:
        """Images from ``n`` fixed latent vectors (the same all run), computed once per step,
        so several plugins showing samples at the same step share one forward pass."""
        key = (self.step, n)
        if self._preview_key != key:
            c = self.config
            z = fixed_noise(n, c.nz, seed=c.seed + 3, device=self.device, kind=c.latent)
            self._preview = self.sample(z)
            self._preview_key = key
        return self._preview

    def autocast(self) -> torch.autocast:
        """Forward passes run in bf16 with ``precision = "bf16"``; backward stays outside."""
        # Autocast's cache of casted weights must not outlive a graph capture.
        return torch.autocast(
            self.device.type,
            torch.bfloat16,
            enabled=self.config.precision == "bf16",
            cache_enabled=not self.graph_wanted,
        )

    # ----------------------------------------------------------------------- the loop
    def fit(self, resume: dict[str, Any] | None = None) -> dict[str, float]:
        """Train until ``total_steps``; return the last logged scalars.

        ``resume`` is a loaded checkpoint (:func:`gantricks.checkpoint.load`): the run
        continues from its step exactly as if it had never stopped.
        """
        if self._folder_released:
            raise GantricksError(
                f"this run was refused before its first step and its folder {str(self.run_dir)!r} "
                "was given back; prepare a new run (gantricks.run.prepare) to train again"
            )
        if self.dist.is_main:  # only rank 0 writes there (a slower rank must not remake it)
            files.make_dirs(self.run_dir)
        if resume is not None:
            self.load_core_state(resume)
            if self.dist.is_main:
                metrics_file.trim(self.run_dir, self.step)
        reason = "error"
        try:
            self.hook.gantricks_train_start(trainer=self)
            if resume is not None:
                self.load_plugin_state(resume)
                if self.dist.is_main:  # the run's new settings, now that they are accepted
                    self.write_config()
            with graceful_interrupt(self._interrupted, lambda: self.stop_requested):
                while self.step < self.total_steps and not self._stopping():
                    self.train_step()
                    self.step += 1
                    self.hook.gantricks_step_end(trainer=self, step=self.step)
                    if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                        self.log()
                if self.window.steps:
                    self.log()
            reason = "interrupted" if self.stop_requested else "completed"
        except KeyboardInterrupt:
            reason = "aborted"
            raise
        except TrainingStopped:
            reason = "nonfinite"
            raise
        except Exception as e:
            raise self._blame(e) from e
        finally:
            self._end(reason)
        return self.last_scalars

    def train_step(self) -> None:
        """One step (a discriminator and a generator update) on a newly drawn batch; its
        losses join the log window. ``step`` is not advanced here."""
        inputs = self._draw()
        if self._decays:
            factor = schedule.lr_factor(
                self.config, self.step, self.total_steps, self.steps_per_epoch
            )
            for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * factor
        self.step_complete = False
        losses = self.step_fn(*inputs)
        self.step_complete = True
        self.window.add(losses)

    def _draw(self) -> tuple[torch.Tensor, ...]:
        """This step's real batch (from the device-resident data) and latent vectors, then
        what the generator's updates draw anew (see :class:`GanStep`): a real batch and
        latent vectors each with ``generator_batch = "fresh"``, else latent vectors for
        each update after the first."""
        real, z = self._draw_pair(self.sampler)
        extra: list[torch.Tensor] = []
        for k in range(self.config.g_steps):
            if self.gen_sampler is not None:
                extra += self._draw_pair(self.gen_sampler)
            elif k > 0:
                extra.append(self._draw_z(real.shape[0], self.sampler))
        return real, z, *extra

    def _draw_pair(self, sampler: BatchSampler) -> tuple[torch.Tensor, torch.Tensor]:
        real = sampler.next()
        if self.config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return real, self._draw_z(real.shape[0], sampler)

    def _draw_z(self, n: int, sampler: BatchSampler) -> torch.Tensor:
        # Every process draws the same global z and takes its own slice (all of it, alone).
        return self.sample_z(n * self.dist.world_size)[sampler.offset : sampler.offset + n]

    def _stopping(self) -> bool:
        # Across processes the Ctrl-C flag is agreed on at log steps (see log()), so that
        # every rank leaves the loop after the same step and no collective is left waiting.
        return self._agreed_stop if self.dist.enabled else self.stop_requested

    def _interrupted(self, signal_name: str) -> None:
        self.stop_requested = True
        print(
            f"\ninterrupt ({signal_name}): finishing this step and saving a checkpoint "
            "(Ctrl-C again to stop at once)",
            flush=True,
        )

    def _end(self, reason: str) -> None:
        """``gantricks_train_end``; a failure there after a failure in training is only
        reported, so the first error is the one raised."""
        try:
            self.hook.gantricks_train_end(trainer=self, reason=reason)
        except Exception as e:
            if reason in ("completed", "interrupted"):
                raise self._blame(e) from e
            warnings.warn(f"while stopping after an error: {self._blame(e)}", stacklevel=3)
        if reason == "error" and self.step == 0 and self.release_folder and self.dist.is_main:
            self._folder_released = self.release_folder()

    def _blame(self, error: Exception) -> Exception:
        culprit = None if isinstance(error, GantricksError) else self.plugins.blame(error)
        where = f"plugin {culprit[0]!r}, hook {culprit[1]}" if culprit else ""
        error = files.as_write_error(error, where, self.run_dir) or error  # not a plugin bug
        if isinstance(error, WriteError):  # the message ends with what the run kept
            return checkpoint.note_what_is_kept(error, self.run_dir)
        if isinstance(error, GantricksError) or culprit is None:
            return error
        return PluginError(culprit[0], culprit[1], error)

    # ------------------------------------------------------------------- logging
    def log(self) -> dict[str, float]:
        """Read the loss window back (the one host sync), write metrics.jsonl, call log hooks."""
        if not self.window.steps:
            return self.last_scalars
        window = self.window.steps
        scalars, elapsed = self.window.read(self.dist.mean)
        losses = list(scalars)
        self._agreed_stop = self.dist.any(self.stop_requested, self.device)
        # All processes together: each rank's batch_size is its share of the global batch.
        images = window * self.config.batch_size * self.dist.world_size
        scalars["img_per_s"] = images / max(elapsed, 1e-9)
        scalars["epoch"] = self.sampler.epochs_done
        scalars.update(self.plugins.take_logged())
        self.hook.gantricks_log(trainer=self, step=self.step, scalars=scalars)
        if self.dist.is_main:
            metrics_file.append(self.run_dir, {"step": self.step, "time": time.time(), **scalars})
        self.last_scalars = scalars
        bad = [n for n in losses if not math.isfinite(scalars[n])]
        if bad:
            when = f"at step {self.step}"
            if window > 1:
                when = f"in the {window} steps up to step {self.step}"
            raise TrainingStopped(
                f"training stopped: {', '.join(bad)} became non-finite (NaN or inf) {when}. "
                "Try a lower learning rate or a different seed; no checkpoint is overwritten "
                "with the bad state."
            )
        return scalars

    def write_config(self) -> None:
        """The run's resolved configuration, ``config.json`` in the run folder."""
        checkpoint.atomic_write_text(self.run_dir / "config.json", to_json(self.config) + "\n")

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (see :mod:`.state`)."""
        return state.state_dict(self)

    def load_core_state(self, ckpt: dict[str, Any]) -> None:
        """Restore models, optimisers, data order, RNGs and step from a checkpoint."""
        state.load_core_state(self, ckpt)

    def load_plugin_state(self, ckpt: dict[str, Any]) -> None:
        """Give each plugin its saved state."""
        state.load_plugin_state(self, ckpt)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.load_core_state(ckpt)
        self.load_plugin_state(ckpt)

    def save_checkpoint(self, path: str | Path, require_finite: bool = True) -> Path:
        """Write a checkpoint atomically.

        With ``require_finite`` (the default) the models' parameters are checked first, so
        a NaN that appeared since the last log never overwrites the last good checkpoint:
        the run stops as it would at the next log.
        """
        if require_finite and not self.parameters_finite():
            raise TrainingStopped(
                f"training stopped at step {self.step}: the model parameters became non-finite "
                "(NaN or inf). Try a lower learning rate or another seed; no checkpoint is "
                "overwritten with the bad state."
            )
        return checkpoint.save_atomic(self.state_dict(), path)

    def parameters_finite(self) -> bool:
        """One device-to-host read: are all of G's and D's parameters finite?"""
        params = [*self.models.generator.parameters(), *self.models.discriminator.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())
