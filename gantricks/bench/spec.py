"""What a bench trains (combos × seeds, shared options, scores) and where (executor)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gantricks.bench.combos import Combo, check_unique
from gantricks.errors import GantricksError
from gantricks.metrics.registry import HIGHER_IS_BETTER

#: Headline number of each metric in a result, and whether higher is better.
#: Every headline number and whether higher is better (the metric registry's).
HEADLINES = HIGHER_IS_BETTER
OFF = ["no:progress", "no:tensorboard", "no:samples"]
EXECUTORS = ("local", "slurm")


@dataclass
class SlurmOptions:
    """One Slurm job per run, submitted through submitit (``pip install gantricks[slurm]``).

    ``cluster = "local"`` runs the same jobs with submitit's local executor (processes on
    this machine, no Slurm): for tests and for trying a command before a cluster."""

    partition: str | None = None
    time_min: int = 60
    gpus_per_run: int = 1
    cpus_per_run: int = 4
    mem_gb: float | None = None
    max_running: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cluster: str = "slurm"


@dataclass
class BenchSpec:
    combos: list[Combo]
    seeds: int
    base: dict[str, Any]
    metrics: list[str]
    out: Path
    num_samples: int = 5000
    eval_every: int = 0
    inception_weights: str | None = None
    jobs: int = 1
    command: str = ""
    #: Combination the others are compared with; default "none" when there is one, else
    #: the first combination.
    baseline: str | None = None
    executor: str = "local"
    #: Local executor: GPUs to spread runs over (CUDA device numbers as strings);
    #: ``runs_per_gpu`` runs share each one.
    gpus: list[str] | None = None
    runs_per_gpu: int = 1
    #: torch threads of each run; default: the CPU cores divided by the runs trained at
    #: once, when that is more than one (a single run keeps torch's default).
    threads: int | None = None
    slurm: SlurmOptions | None = None

    def baseline_name(self) -> str:
        names = [c.name for c in self.combos]
        if self.baseline is not None:
            return self.baseline
        return "none" if "none" in names else names[0]


def check_spec(spec: BenchSpec) -> None:
    """Executor options and baseline that cannot work, refused before anything trains."""
    if spec.executor not in EXECUTORS:
        raise GantricksError(f"executor {spec.executor!r}: choose one of {', '.join(EXECUTORS)}")
    names = [c.name for c in spec.combos]
    if spec.baseline is not None and spec.baseline not in names:
        raise GantricksError(
            f"baseline {spec.baseline!r} is not one of the combinations ({', '.join(names)})"
        )
    if spec.jobs < 1 or spec.runs_per_gpu < 1 or (spec.threads is not None and spec.threads < 1):
        raise GantricksError("--jobs, --runs-per-gpu and --threads must be at least 1")
    if spec.gpus is not None:
        if spec.executor != "local":
            raise GantricksError("--gpus is for the local executor; Slurm gives each job its GPUs")
        if not spec.gpus or not all(g.strip().isdigit() for g in spec.gpus):
            raise GantricksError(f"--gpus wants CUDA device numbers, e.g. 0,1 (got {spec.gpus})")
        if spec.jobs > 1:
            raise GantricksError(
                "--jobs and --gpus both set how many runs train at once; with --gpus, that is "
                "the number of GPUs × --runs-per-gpu"
            )
        if spec.base.get("device") == "cpu":
            raise GantricksError("--gpus with --device cpu: leave --device out (or use cuda)")
    elif spec.runs_per_gpu != 1:
        raise GantricksError("--runs-per-gpu needs --gpus")
    if spec.executor == "slurm" and spec.jobs > 1:
        raise GantricksError(
            "--jobs is for the local executor; with Slurm, --slurm-max-running caps the "
            "runs at once"
        )


def check_combos(spec: BenchSpec) -> None:
    """Every combo's plugins load and its options validate, before anything trains: a
    typo found at its combo's turn would cost all the runs before it."""
    from gantricks.config import validate_core
    from gantricks.plugin_manager import PluginManager, resolve_specs
    from gantricks.run import split_options

    check_unique(spec.combos)
    for combo in spec.combos:
        core, plugin_opts = split_options({**spec.base, **combo.options})
        plugin_opts["eval"] = eval_options(spec)
        try:
            config = validate_core(core)
            pm = PluginManager()
            pm.load(resolve_specs([*OFF, *combo.plugins]), plugin_opts)
            pm.hook.gantricks_configure(config=config)  # checks across options, e.g. metrics
            _dry_build(config, pm)
        except GantricksError as e:
            raise GantricksError(f"combo {combo.name!r}: {e}") from None


def check_data(spec: BenchSpec) -> None:
    """The runs' dataset is there (or can be downloaded): a missing one is one clear error
    before training, not a failure recorded for every run. Folder and CelebA datasets,
    slow to read whole, are left to the first run."""
    from gantricks.data import load_dataset

    base = {**spec.base, **{k: v for c in spec.combos for k, v in c.options.items()}}
    dataset = str(spec.base.get("dataset", "glyphs"))
    if dataset in ("folder", "celeba", "glyphs"):
        return
    load_dataset(
        dataset,
        base.get("data_dir", "data"),
        train=True,
        download=bool(spec.base.get("download", True)),
    )


def _dry_build(config: Any, pm: Any) -> None:
    """Build the combo's models with its plugins on the CPU, as a run would (without the
    data): a plugin that refuses a model or a dataset (virtual batch norm for a D without
    batch norm, labels on an unlabelled dataset) says so before anything trains."""
    import torch

    from gantricks.data import NATIVE_SIZE
    from gantricks.models import build_models, model_spec

    model_spec(config.model)
    gray = ("glyphs", "mnist", "fashion-mnist")
    channels = 1 if config.dataset in gray else 3  # a folder of gray images: 1, checked later
    size = config.image_size or NATIVE_SIZE[config.dataset]
    with torch.random.fork_rng(devices=[]):
        models = build_models(config.nz, channels, size, config.ngf, config.ndf, config.model)
        pm.hook.gantricks_build_models(models=models, config=config)


def settings_of(spec: BenchSpec, combo: Combo) -> dict[str, Any]:
    """What a run's result depends on besides its seed, stored in its result.json: a bench
    started again reuses a finished run only if these are the same."""
    settings = {
        "plugins": combo.plugins,
        "options": combo.options,
        "base": spec.base,
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
        "eval_every": spec.eval_every,
        "inception_weights": spec.inception_weights,
    }
    return json.loads(json.dumps(settings, default=str))  # as it reads back from JSON


def eval_options(spec: BenchSpec) -> dict[str, Any]:
    """The eval plugin's options for every run: scored at the end and, for the curves,
    every ``eval_every`` steps (default: a fifth of the run)."""
    steps = int(spec.base.get("steps") or 0)
    return {
        "metrics": spec.metrics,
        "num_samples": spec.num_samples,
        "every": spec.eval_every or (max(steps // 5, 1) if steps else 0),
        "inception_weights": spec.inception_weights,
    }


def run_name(combo: Combo, seed: int) -> str:
    return f"{combo.slug}-seed{seed}"


def run_dir(spec: BenchSpec, combo: Combo, seed: int) -> Path:
    return spec.out / "runs" / run_name(combo, seed)
