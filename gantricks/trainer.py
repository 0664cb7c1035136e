"""The DCGAN training loop. It reads top to bottom; every trick enters through a hook.

One step: draw a real batch and z; generate; the discriminator sees the real and the
generated batch separately and minimises the sum of its loss terms; the updated
discriminator sees the generated batch again and the generator minimises the sum of its
loss terms (non-saturating loss by default). Loss terms stay on the device and are
averaged and read back only every ``log_every`` steps, so the loop never waits on the
device between steps.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from gantricks import checkpoint, distributed
from gantricks.config import RunConfig, to_json
from gantricks.data import BatchSampler, ImageData
from gantricks.errors import GantricksError, PluginError, TrainingStopped
from gantricks.models import Models, build_models
from gantricks.plugin_manager import MAIN_RANK_PLUGINS, PluginManager
from gantricks.sampling import draw_latent, fixed_noise, generate

ONE = 1.0
#: Eager steps (on a side stream) before the training step is captured in a CUDA graph:
#: cuDNN's autotuning, lazy initialisation and the optimisers' state happen there.
GRAPH_WARMUP_STEPS = 3
#: The hooks that run inside a training step, and so inside a captured CUDA graph.
STEP_HOOKS = (
    "gantricks_discriminator_targets",
    "gantricks_discriminator_loss",
    "gantricks_after_discriminator_step",
    "gantricks_generator_loss",
    "gantricks_after_generator_step",
)
#: Length of a run when neither steps nor epochs is given (glyphs: ~2,300 steps, minutes on a CPU).
DEFAULT_EPOCHS = 5.0


@dataclass
class StepBatch:
    """Everything one step computed, handed to the loss hooks.

    The discriminator's update sees ``real`` and ``fake.detach()``. The generator's update
    is judged on ``gen_fake`` (with gradients to G), beside the real batch ``gen_real``:
    with ``generator_batch = "same"`` these are ``fake`` and ``real``; with ``"fresh"``,
    a batch generated from new z and a second real batch, and ``fake`` carries no
    gradient. Fields computed later in the step are ``None`` until then.
    """

    real: torch.Tensor
    z: torch.Tensor
    fake: torch.Tensor
    real_target: float | torch.Tensor = 1.0
    fake_target: float | torch.Tensor = 0.0
    real_logits: torch.Tensor | None = None
    real_features: torch.Tensor | None = None
    fake_logits: torch.Tensor | None = None
    fake_features: torch.Tensor | None = None
    gen_real: torch.Tensor | None = None
    gen_fake: torch.Tensor | None = None
    gen_logits: torch.Tensor | None = None
    gen_features: torch.Tensor | None = None


def bce_logits(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant or per-example target."""
    if not isinstance(target, torch.Tensor):
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits))


def _adam(
    module: torch.nn.Module, lr: float, config: RunConfig, capturable: bool = False
) -> torch.optim.Adam:
    """Fused Adam: one kernel per step, and its step counters stay on the device (the
    unfused versions read a host-side counter with .item() for every parameter).
    ``capturable``: its step may be recorded in a CUDA graph."""
    # Frozen parameters (requires_grad=False) are no optimiser's business.
    params = [p for p in module.parameters() if p.requires_grad]
    kw = _adam_settings(config, lr, capturable)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError):  # devices without a fused kernel (older torch on CPU)
        return torch.optim.Adam(params, **kw)


def _adam_settings(config: RunConfig, lr: float, capturable: bool) -> dict[str, Any]:
    """Adam's hyperparameters from the run configuration (also re-applied on resume)."""
    betas = (config.beta1, config.beta2)
    return {"lr": lr, "betas": betas, "eps": config.adam_eps, "capturable": capturable}


def graph_safety(plugin: Any) -> bool | None:
    """For a plugin (object, class or module): ``None`` if it implements no step hook,
    else whether it declares ``graph_safe = True``.

    A CUDA graph replays kernels only: Python in a step hook runs once, when the step is
    captured. A plugin whose step hooks are pure tensor work (no Python counters, no host
    reads, randomness from torch's global generator) sets the class attribute
    ``graph_safe = True``.
    """
    if not any(hasattr(plugin, hook) for hook in STEP_HOOKS):
        return None
    return bool(getattr(plugin, "graph_safe", False))


def graph_unsafe_plugins(plugins: PluginManager) -> list[str]:
    """Loaded plugins with step hooks that have not declared ``graph_safe = True``."""
    return sorted(name for name, obj in plugins.pm.list_name_plugin() if graph_safety(obj) is False)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when available. Each process of a multi-GPU run takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "cuda":
        raise GantricksError(
            "--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto"
        )
    return torch.device(name)


def release_unused_run_dir(run_dir: Path, remove_folder: bool) -> bool:
    """Give back a new run's folder that holds nothing but its ``config.json``.

    A run refused before its first step (a plugin's check at ``train_start``, a bad option)
    would otherwise leave a folder that takes its name: a retry with the same ``--name``
    would become ``NAME-2``. Only that one file, written by this run, is removed, and the
    folder itself only when this run made it (``remove_folder``) and it is then empty:
    a folder the user made stays, and anything else written there keeps it all.
    """
    try:
        if [p.name for p in run_dir.iterdir()] != ["config.json"]:
            return False
        (run_dir / "config.json").unlink()
        if remove_folder:
            run_dir.rmdir()
    except OSError:  # gone already, or another file appeared meanwhile: keep what is left
        return False
    return True


class Trainer:
    """A DCGAN training run: models, optimisers, data, plugins and the loop."""

    def __init__(
        self,
        config: RunConfig,
        plugins: PluginManager,
        data: ImageData,
        run_dir: str | Path,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.hook = plugins.hook
        self.data = data
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.step = 0
        #: Set by :func:`gantricks.run.prepare` when it claimed a new folder for this run,
        #: ``"made"`` or ``"found"`` (empty): a run that fails before its first step then
        #: gives the folder back, and cannot train again (``fit`` refuses).
        self.new_run_dir: Literal["made", "found"] | None = None
        self._run_dir_released = False
        self.stop_requested = False
        self._agreed_stop = False  # multi-process: all ranks stop at the same step
        self._bf16 = config.precision == "bf16"
        self.hook.gantricks_configure(config=config)

        torch.manual_seed(config.seed)
        self.models: Models = build_models(
            config.nz, data.channels, data.image_size, config.ngf, config.ndf
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
        if config.compile:
            self.models.generator.compile()
            self.models.discriminator.compile()
        self._graph_wanted = self._cuda_graph_possible()
        self.opt_g = _adam(self.models.generator, config.lr_g, config, self._graph_wanted)
        self.opt_d = _adam(self.models.discriminator, config.lr_d, config, self._graph_wanted)
        self._params = {
            id(opt): [p for group in opt.param_groups for p in group["params"]]
            for opt in (self.opt_g, self.opt_d)
        }
        images = data.images.to(self.device)
        self.sampler = BatchSampler(
            images,
            config.batch_size,
            seed=config.seed + 1,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        # generator_batch = "fresh": G's update takes its real batch from a second,
        # independent shuffle of the same images (the authors' trainx_unl2).
        self.gen_sampler = (
            BatchSampler(
                images,
                config.batch_size,
                seed=config.seed + 4,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
            if config.generator_batch == "fresh"
            else None
        )
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.total_steps = self._total_steps()
        self._sums: dict[str, torch.Tensor] = {}
        self._window_steps = 0
        self._window_start = time.perf_counter()
        self.last_scalars: dict[str, float] = {}
        self._preview_key: tuple[int, int] | None = None
        self._preview = torch.empty(0)
        # CUDA graph of the training step (cuda_graph=true): captured after a warm-up.
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_inputs: tuple[torch.Tensor, ...] | None = None
        self._graph_names: list[str] = []
        self._graph_out = torch.empty(0)
        self._graph_sum: torch.Tensor | None = None
        self._graph_warm = 0
        self._collecting: dict[str, torch.Tensor] | None = None

    def _cuda_graph_possible(self) -> bool:
        """Whether ``cuda_graph`` can be honoured; if asked for and not, say why, once."""
        if not self.config.cuda_graph:
            return False
        reason = None
        if self.device.type != "cuda":
            reason = f"the run is on {self.device.type}, not CUDA"
        elif self.dist.enabled:
            reason = "multi-process runs average gradients outside the step"
        else:
            unsafe = graph_unsafe_plugins(self.plugins)
            if unsafe:
                reason = (
                    f"plugin(s) {', '.join(unsafe)} do per-step work in Python that a graph "
                    "would not repeat (they do not declare graph_safe = True)"
                )
        if reason:
            warnings.warn(
                f"cuda_graph=true is ignored: {reason}; the step runs eagerly", stacklevel=3
            )
            return False
        return True

    # ----------------------------------------------------------------- set-up helpers
    def _total_steps(self) -> int:
        if self.config.steps is not None:
            return self.config.steps
        epochs = self.config.epochs if self.config.epochs is not None else DEFAULT_EPOCHS
        # Rounded first: 1.1 epochs × 100 batches is 110.00000000000001 in floating point.
        return max(1, math.ceil(round(epochs * self.sampler.batches_per_epoch, 6)))

    @property
    def generator(self) -> torch.nn.Module:
        return self.models.generator

    @property
    def discriminator(self) -> torch.nn.Module:
        return self.models.discriminator

    def sample_z(self, n: int) -> torch.Tensor:
        """Latent vectors from the run's seeded noise generator (part of the checkpoint)."""
        return draw_latent(
            n, self.config.nz, self.config.latent, generator=self.noise, device=self.device
        )

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images for ``z`` without side effects on training state (see sampling.generate)."""
        return generate(self.models.generator, z.to(self.device))

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

    # ----------------------------------------------------------------------- the loop
    def fit(self, resume: dict[str, Any] | None = None) -> dict[str, float]:
        """Train until ``total_steps``; return the last logged scalars.

        ``resume`` is a loaded checkpoint (:func:`gantricks.checkpoint.load`): the run
        continues from its step exactly as if it had never stopped.
        """
        if self._run_dir_released:
            raise GantricksError(
                f"this run was refused before its first step and its folder {str(self.run_dir)!r} "
                "was given back; prepare a new run (gantricks.run.prepare) to train again"
            )
        if self.dist.is_main:  # only rank 0 writes there (a slower rank must not remake it)
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            self.load_core_state(resume)
            if self.dist.is_main:
                self._trim_metrics()
        reason = "error"
        try:
            self.hook.gantricks_train_start(trainer=self)
            if resume is not None:
                self.load_plugin_state(resume)
                if self.dist.is_main:  # the run's new settings, now that they are accepted
                    self.write_config()
            with self._graceful_interrupt():
                first = True
                while self.step < self.total_steps and not self._stopping():
                    if first:
                        self.first_step()
                    else:
                        self.train_step()
                    first = False
                    self.step += 1
                    self.hook.gantricks_step_end(trainer=self, step=self.step)
                    if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                        self.log()
                if self._window_steps:
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
            self.hook.gantricks_train_end(trainer=self, reason=reason)
            if reason == "error" and self.step == 0 and self.new_run_dir and self.dist.is_main:
                made = self.new_run_dir == "made"
                self._run_dir_released = release_unused_run_dir(self.run_dir, made)
        return self.last_scalars

    def write_config(self) -> None:
        """The run's resolved configuration, ``config.json`` in the run folder."""
        checkpoint.atomic_write_text(self.run_dir / "config.json", to_json(self.config) + "\n")

    def _stopping(self) -> bool:
        # Across processes the Ctrl-C flag is agreed on at log steps (see log()), so that
        # every rank leaves the loop after the same step and no collective is left waiting.
        return self._agreed_stop if self.dist.enabled else self.stop_requested

    def autocast(self) -> torch.autocast:
        """Forward passes run in bf16 with ``precision = "bf16"``; backward stays outside."""
        # Autocast's cache of casted weights must not outlive a graph capture.
        return torch.autocast(
            self.device.type,
            torch.bfloat16,
            enabled=self._bf16,
            cache_enabled=not self._graph_wanted,
        )

    def first_step(self) -> None:
        """The first training step; with ``compile`` on, compiled, or eager if compiling fails.

        Inductor can fail at compile time or only when a compiled backward first runs, which
        may be after the discriminator's update of this step. So the state is snapshotted
        first and restored on failure: the step is then taken once, uncompiled, and the run
        is exactly the run an eager start would have given.
        """
        if not self.config.compile:
            self.train_step()
            return
        snapshot = copy.deepcopy(self.state_dict())
        try:
            self.train_step()
        except Exception as e:  # dynamo/inductor raise many types; any of them means "no"
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "training continues without compilation",
                stacklevel=2,
            )
            import torch._dynamo

            torch._dynamo.reset()
            for m in (self.models.generator, self.models.discriminator):
                m._compiled_call_impl = None  # undo nn.Module.compile()
            self.load_core_state(snapshot)
            self.load_plugin_state(snapshot)
            self._sums, self._window_steps = {}, 0
            self.train_step()

    def train_step(self) -> None:
        """One discriminator update, then one generator update.

        With ``cuda_graph`` on, the step is captured once (after a few eager warm-up steps)
        and then replayed: the batch and z are copied into the graph's input tensors, and
        every kernel of both updates, plugins' included, is launched as one graph.
        """
        inputs = self._draw()
        if self._graph is not None:
            self._replay(inputs)
        elif self._graph_wanted and self._graph_warm >= GRAPH_WARMUP_STEPS:
            self._capture(inputs)
        elif self._graph_wanted:
            # Warm-up on a side stream, as CUDA graph capture requires.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._step(*inputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph_warm += 1
        else:
            self._step(*inputs)
        self._window_steps += 1

    def _draw(self) -> tuple[torch.Tensor, ...]:
        """This step's real batch (from the device-resident data) and latent vectors, and
        with ``generator_batch = "fresh"`` a second pair for the generator's update."""
        real, z = self._draw_pair(self.sampler)
        if self.gen_sampler is None:
            return real, z
        return real, z, *self._draw_pair(self.gen_sampler)

    def _draw_pair(self, sampler: BatchSampler) -> tuple[torch.Tensor, torch.Tensor]:
        real = sampler.next()
        if self.config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = self.sample_z(real.shape[0] * self.dist.world_size)
        if self.dist.enabled:  # the same global z on every rank; each takes its slice
            z = z[sampler.offset : sampler.offset + real.shape[0]]
        return real, z

    def _step(
        self,
        real: torch.Tensor,
        z: torch.Tensor,
        gen_real: torch.Tensor | None = None,
        gen_z: torch.Tensor | None = None,
    ) -> None:
        G, D = self.models.generator, self.models.discriminator
        fresh = gen_z is not None
        with self.autocast():
            # With a fresh batch for G's update, this one needs no graph for backward.
            with torch.set_grad_enabled(not fresh):
                fake = G(z)
            batch = StepBatch(real=real, z=z, fake=fake)

            # Discriminator: real and generated batches pass separately (all-real, all-fake BN).
            targets = self.hook.gantricks_discriminator_targets(trainer=self, batch=batch)
            if targets is not None:
                batch.real_target, batch.fake_target = targets
            batch.real_logits, batch.real_features = D(real)
            batch.fake_logits, batch.fake_features = D(fake.detach())
            d_terms = {
                "real": bce_logits(batch.real_logits, batch.real_target),
                "fake": bce_logits(batch.fake_logits, batch.fake_target),
            }
            self.hook.gantricks_discriminator_loss(trainer=self, terms=d_terms, batch=batch)
        loss_d = self._minimise(self.opt_d, d_terms, "loss_d")
        self.hook.gantricks_after_discriminator_step(trainer=self)

        # Generator: the updated discriminator judges the same generated batch, or a new one.
        with self.autocast():
            if fresh:
                batch.gen_real, batch.gen_fake = gen_real, G(gen_z)
            else:
                batch.gen_real, batch.gen_fake = real, fake
            batch.gen_logits, batch.gen_features = D(batch.gen_fake)
            g_terms = {"adv": bce_logits(batch.gen_logits, ONE)}
            self.hook.gantricks_generator_loss(trainer=self, terms=g_terms, batch=batch)
        loss_g = self._minimise(self.opt_g, g_terms, "loss_g")
        self.hook.gantricks_after_generator_step(trainer=self)

        self._accumulate({"loss_d": loss_d, "loss_g": loss_g})

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        """Record one training step in a CUDA graph, then take the step by replaying it.

        Capturing runs no kernel, so if it fails the models are as they were: the step is
        taken eagerly instead and the run continues without a graph. Some torch versions
        leave the global CUDA generator in capture mode after a failed capture; then no
        eager step can run in this process, and the run stops with an error saying so.
        """
        self._graph_inputs = tuple(t.clone() for t in inputs)
        graph = torch.cuda.CUDAGraph()
        self._collecting = {}
        try:
            with torch.cuda.graph(graph):
                self._step(*self._graph_inputs)
                names = list(self._collecting)
                out = torch.stack(list(self._collecting.values()))
        except Exception as e:  # capture raises many types; any of them means "no"
            self._collecting = None
            self._graph_wanted, self._graph_inputs = False, None
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            try:  # can this process still draw random numbers and run kernels?
                torch.cuda.synchronize(self.device)
                torch.randn(1, device=self.device)
            except Exception:
                raise GantricksError(
                    f"CUDA graph capture failed ({why}) and left CUDA unusable in this "
                    "process; run again without cuda_graph=true (the last checkpoint is kept)"
                ) from e
            warnings.warn(
                f"CUDA graph capture failed ({why}); training continues eagerly", stacklevel=3
            )
            self._step(*inputs)
            return
        self._collecting = None
        self._graph, self._graph_names, self._graph_out = graph, names, out
        self._graph_sum = torch.zeros_like(out)
        graph.replay()
        self._graph_sum += out

    def _replay(self, inputs: tuple[torch.Tensor, ...]) -> None:
        assert self._graph is not None and self._graph_inputs is not None
        torch._foreach_copy_(list(self._graph_inputs), list(inputs))
        self._graph.replay()
        self._graph_sum += self._graph_out  # every loss term of the step, one kernel

    def _minimise(
        self, opt: torch.optim.Optimizer, terms: dict[str, torch.Tensor], prefix: str
    ) -> torch.Tensor:
        if not terms:
            raise GantricksError(f"{prefix}: every loss term was removed by plugins")
        loss = torch.stack([t.reshape(()) for t in terms.values()]).sum()
        opt.zero_grad(set_to_none=True)
        # Gradients only for this player's parameters: the generator's backward pass then
        # skips the discriminator's weight gradients, which nothing would use.
        loss.backward(inputs=self._params[id(opt)])
        if self.dist.enabled:
            distributed.average_gradients(self._params[id(opt)], self.dist.world_size)
        opt.step()
        self._accumulate({f"{prefix}/{k}": v for k, v in terms.items()})
        return loss.detach()

    def _accumulate(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            value = value.detach().reshape(()).float()
            if self._collecting is not None:  # capturing: the graph's outputs are summed
                self._collecting[name] = value
            elif name in self._sums:
                self._sums[name] += value
            else:
                self._sums[name] = value.clone()

    # ------------------------------------------------------------------- logging
    def log(self) -> dict[str, float]:
        """Read the loss window back (the one host sync), write metrics.jsonl, call log hooks."""
        if not self._window_steps:
            return self.last_scalars
        if self._graph_sum is not None:  # the graph's steps, beside any eager warm-up steps
            for name, value in zip(
                self._graph_names, self._graph_sum.clone().unbind(0), strict=True
            ):
                self._sums[name] = self._sums[name] + value if name in self._sums else value
            self._graph_sum.zero_()
        names = list(self._sums)
        stacked = torch.stack([self._sums[n] for n in names]).div_(self._window_steps)
        if self.dist.enabled:
            stacked = distributed.mean_across_ranks(stacked)
            self._agreed_stop = distributed.any_rank(self.stop_requested, self.device)
        values = stacked.tolist()
        elapsed = time.perf_counter() - self._window_start
        scalars = dict(zip(names, values, strict=True))
        # All processes together: each rank's batch_size is its share of the global batch.
        window = self._window_steps
        images = window * self.config.batch_size * self.dist.world_size
        scalars["img_per_s"] = images / max(elapsed, 1e-9)
        scalars["epoch"] = self.sampler.epochs_done
        self._sums, self._window_steps = {}, 0
        self._window_start = time.perf_counter()
        self.hook.gantricks_log(trainer=self, step=self.step, scalars=scalars)
        if self.dist.is_main:
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps({"step": self.step, "time": time.time(), **scalars}) + "\n")
        self.last_scalars = scalars
        bad = [n for n in names if not math.isfinite(scalars[n])]
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

    @contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """First Ctrl-C (SIGINT) or SIGTERM: finish the current step, save and stop.
        Second: stop at once. SIGTERM is what batch schedulers (SLURM, Kubernetes) send
        before they kill a job, so a preempted run keeps its last step too."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            print(
                f"\ninterrupt ({signal.Signals(signum).name}): finishing this step and "
                "saving a checkpoint (Ctrl-C again to stop at once)",
                flush=True,
            )

        caught = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, handler) for s in caught}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def _blame(self, error: Exception) -> Exception:
        if isinstance(error, GantricksError):
            return error
        culprit = self.plugins.blame(error)
        if culprit is None:
            return error
        return PluginError(culprit[0], culprit[1], error)

    def _trim_metrics(self) -> None:
        """Drop metrics.jsonl rows logged after the checkpoint we resume from."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        kept, broken = [], 0
        for line in rows:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when the process was killed
                broken += 1
                continue
            if row.get("step", 0) <= self.step:
                kept.append(line)
        if broken:
            warnings.warn(
                f"{path}: dropped {broken} unreadable line(s), written when the run was "
                "killed mid-write",
                stacklevel=2,
            )
        if len(kept) != len(rows):
            checkpoint.atomic_write_text(path, "".join(line + "\n" for line in kept))

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly."""
        return {
            "step": self.step,
            "config": self.config.model_dump(mode="json"),
            "generator": self.models.generator.state_dict(),
            "discriminator": self.models.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sampler": self.sampler.state_dict(),
            "gen_sampler": self.gen_sampler.state_dict() if self.gen_sampler else None,
            "noise": self.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "plugins": self.plugins.call_each("gantricks_state_dict", trainer=self),
            "image_size": self.data.image_size,
            "channels": self.data.channels,
        }

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

    def load_core_state(self, ckpt: dict[str, Any]) -> None:
        """Restore models, optimisers, data order, RNGs and step from a checkpoint."""
        path = ckpt.get("path", "checkpoint")
        checkpoint.load_module_state(self.models.generator, ckpt["generator"], "generator", path)
        checkpoint.load_module_state(
            self.models.discriminator, ckpt["discriminator"], "discriminator", path
        )
        try:
            self.opt_g.load_state_dict(ckpt["opt_g"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
        except (ValueError, KeyError) as e:
            raise GantricksError(
                f"checkpoint {path!r}: optimiser state does not fit this run: {e}"
            ) from None
        # The optimisers follow this run's configuration (e.g. --set adam_eps=... on
        # --resume), not the hyperparameters stored with their state.
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group.update(_adam_settings(self.config, lr, self._graph_wanted))
        sampler_state = dict(ckpt["sampler"])
        if "global_batch" not in sampler_state:  # older checkpoints: from their config
            saved_batch = ckpt.get("config", {}).get("batch_size")
            if saved_batch is not None:
                sampler_state["global_batch"] = int(saved_batch) * self.dist.world_size
        self.sampler.load_state_dict(sampler_state, "the training images")
        # A run switched to generator_batch=fresh on resume starts its second shuffle anew.
        if self.gen_sampler is not None and ckpt.get("gen_sampler") is not None:
            self.gen_sampler.load_state_dict(ckpt["gen_sampler"], "the generator's real batches")
        self.step = int(ckpt["step"])
        self._restore_noise(ckpt["noise"], path)
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])

    def _restore_noise(self, state: torch.Tensor, path: str) -> None:
        """The z generator's state; a checkpoint written on another device type (a CPU
        run continued on a GPU) holds another kind of generator's state (CPU and CUDA
        states differ in size), which cannot be loaded: z then comes from a stream seeded
        by the seed and step, and the continuation is statistically, not bitwise, the run
        it continues. A state of the right kind that fails to load is still an error."""
        if state.numel() == self.noise.get_state().numel():
            self.noise.set_state(state)
        else:
            self.noise.manual_seed(self.config.seed + 2 + self.step)
            warnings.warn(
                f"checkpoint {path!r} was written on another device type than "
                f"{self.device.type}: the latent noise continues from a new seeded stream "
                "(seed + 2 + step), so this resume is not bit-identical to an "
                "uninterrupted run",
                stacklevel=2,
            )

    def load_plugin_state(self, ckpt: dict[str, Any]) -> None:
        """Give each plugin its saved state; a plugin with state on only one side is an error."""
        path = ckpt.get("path", "checkpoint")
        saved = ckpt.get("plugins", {})
        stateful = set(self.plugins.implementers("gantricks_state_dict"))
        # Ranks other than 0 run without the logging and saving plugins.
        rank0_only = set() if self.dist.is_main else set(MAIN_RANK_PLUGINS)
        unknown = sorted(set(saved) - set(self.plugins.plugins) - rank0_only)
        if unknown:
            raise GantricksError(
                f"checkpoint {path!r} holds state of plugin(s) {', '.join(unknown)}, which "
                f"are not enabled in this run; enable them with --plugins {','.join(unknown)}"
            )
        missing = sorted(
            n
            for n in stateful - set(saved)
            if self.plugins.call_one(n, "gantricks_state_dict", trainer=self)
        )
        if missing:
            raise GantricksError(
                f"checkpoint {path!r} has no state for plugin(s) {', '.join(missing)}: they "
                "were not enabled when it was saved, so the run cannot continue exactly. "
                "Resume without them or start a new run."
            )
        for name, state in saved.items():
            if name in rank0_only and name not in self.plugins.plugins:
                continue
            self.plugins.call_one(name, "gantricks_load_state_dict", trainer=self, state=state)
