"""Run configuration: one pydantic model for the core, one per plugin, set from TOML or --set.

Core options are top-level keys (``steps = 2000``); a plugin's options live in a table named
after the plugin (``[minibatch]`` / ``--set minibatch.kernels=50``). Every error names the
key and says what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gantricks.errors import GantricksError

DATASETS = (
    "glyphs",
    "mnist",
    "fashion-mnist",
    "stacked-mnist",
    "cifar10",
    "svhn",
    "celeba",
    "folder",
)


class RunConfig(BaseModel):
    """Everything that defines a training run. Defaults follow Radford et al. (2015)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str | None = Field(None, description="run folder name under out_dir")
    out_dir: str = Field("runs", description="parent folder of run folders")
    dataset: Literal[DATASETS] = "glyphs"  # type: ignore[valid-type]
    data_dir: str = Field("data", description="where datasets are found or downloaded")
    download: bool = Field(True, description="download missing datasets when possible")
    image_size: int | None = Field(None, description="default: the dataset's native size")
    nz: int = Field(100, gt=0, description="latent dimension")
    latent: Literal["normal", "uniform"] = Field(
        "normal",
        description="distribution of z: normal N(0, I) (dcgan.torch's default) or uniform "
        "U(-1, 1) in every dimension (the DCGAN paper's figure 1)",
    )
    model: str = Field(
        "dcgan",
        description="the networks: dcgan, improved-gan (the authors' CIFAR-10 convnets), "
        "improved-gan-mlp (their MNIST MLPs), or one an installed package registers",
    )
    ngf: int = Field(64, gt=0, description="generator width")
    ndf: int = Field(64, gt=0, description="discriminator width")
    batch_size: int = Field(128, gt=0)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0, description="Adam's ε (added to √v̂)")
    steps: int | None = Field(None, gt=0, description="training steps (D+G updates)")
    epochs: float | None = Field(None, gt=0, description="alternative to steps (default 5)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = Field(50, gt=0, description="steps between host-side logging")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast forwards")
    bf16_probe: bool = Field(
        True, description="CPU with bf16: time a step in both precisions first, warn if slower"
    )
    channels_last: bool = Field(True, description="NHWC memory layout (measured faster)")
    compile: bool = Field(False, description="torch.compile G and D (falls back if it fails)")
    cuda_graph: bool = Field(
        False,
        description="CUDA: replay the whole training step from one CUDA graph (falls back "
        "with a warning where it cannot)",
    )
    g_steps: int = Field(
        1,
        gt=0,
        description="generator updates per discriminator update (the authors' "
        "minibatch-discrimination code: 3); each after the first draws new z",
    )
    generator_loss: Literal["nonsaturating", "minimax"] = Field(
        "nonsaturating",
        description="nonsaturating: G minimises -log D(G(z)) (DCGAN); minimax: G minimises "
        "log(1 - D(G(z))) (the authors' minibatch-discrimination code)",
    )
    lr_decay_epochs: float | None = Field(
        None,
        gt=0,
        description="decay both learning rates linearly to 0 over the last N "
        "epochs, epoch by epoch (the authors' code: 400 of 1200)",
    )
    lr_decay_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="decay both learning rates linearly to 0 over this last fraction of "
        "the run, step by step (the authors' code: 1/3)",
    )
    lr_decay_steps: int | None = Field(
        None, gt=0, description="decay both learning rates linearly to 0 over the last N steps"
    )
    init_examples: int = Field(
        500,
        gt=0,
        description="real images for the data-dependent initialisation of "
        "weight-normalised layers and minibatch discrimination (the authors': 500)",
    )
    generator_batch: Literal["same", "fresh"] = Field(
        "same",
        description="same: G's update is judged on the generated batch D's update saw "
        "(DCGAN reference code); fresh: G's update draws new z and gets a second, "
        "independently shuffled real batch (Salimans et al.'s code)",
    )
    sync_bn: bool = Field(False, description="multi-process: batch norm over the global batch")
    plugins: list[str] = Field(default_factory=list, description="resolved plugin list")
    plugin_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.cuda_graph and self.compile:
            raise ValueError("cuda_graph and compile cannot be combined; choose one")
        decays = [self.lr_decay_epochs, self.lr_decay_steps, self.lr_decay_fraction]
        if sum(d is not None for d in decays) > 1:
            raise ValueError(
                "give one of lr_decay_epochs, lr_decay_steps and lr_decay_fraction, not both"
            )
        if self.image_size is not None:
            base_for(self.image_size)
        return self


def base_for(image_size: int) -> tuple[int, int]:
    """(base resolution, number of 2x up/down-sampling blocks) of a DCGAN for this size."""
    for base in (4, 7):
        n, size = 0, base
        while size < image_size:
            size, n = size * 2, n + 1
        if size == image_size and n >= 1:
            return base, n
    raise ValueError(
        f"image_size {image_size} is not supported: use 4*2^n or 7*2^n with n >= 1 "
        "(8, 14, 16, 28, 32, 56, 64, 112, 128, ...)"
    )


def parse_value(text: str) -> Any:
    """Parse a --set value as a TOML literal (1, 0.5, true, [1, 2], "s"), ``none`` as
    unset (TOML has no null); anything else is a string."""
    if text.strip() == "none":
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    """Turn ``["steps=10", "minibatch.kernels=50"]`` into a nested options dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GantricksError(
                f"--set {item!r} is not of the form KEY=VALUE "
                "(e.g. --set steps=2000 or --set minibatch.kernels=50)"
            )
        section, dot, option = key.partition(".")
        if dot:
            out.setdefault(section, {})
            if not isinstance(out[section], dict):
                raise GantricksError(f"--set {key}: {section!r} is a core option, not a plugin")
            out[section][option] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; a missing or malformed file is a clear error."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise GantricksError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise GantricksError(f"config file {str(path)!r} is not valid TOML: {e}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def describe_validation_error(err: ValidationError, model: type[BaseModel], prefix: str) -> str:
    """One paragraph naming each bad key, the bad value and what is allowed."""
    fields = model.model_fields
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        if e["type"] == "extra_forbidden":
            # plugin_options is filled in by gantricks (config.json), not given by users
            allowed = ", ".join(sorted(set(fields) - {"plugin_options"}))
            allowed = allowed or "(this plugin has no options)"
            parts.append(f"unknown option {key!r}; allowed: {allowed}")
        elif not loc:  # a check across fields: its message names them, not the whole input
            parts.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
        else:
            value = e.get("input")
            msg = e["msg"]
            parts.append(f"{key}={value!r} is invalid: {msg}")
    return "; ".join(parts) + "."


def validate_core(options: dict[str, Any]) -> RunConfig:
    """Validate core options into a RunConfig with errors that name the key."""
    try:
        return RunConfig(**options)
    except ValidationError as e:
        raise GantricksError(describe_validation_error(e, RunConfig, "")) from None


def validate_plugin_options(
    name: str, model: type[BaseModel] | None, options: dict[str, Any]
) -> BaseModel | None:
    """Validate one plugin's options against its Config model."""
    if model is None:
        if options:
            raise GantricksError(
                f"plugin {name!r} takes no options, but got: {', '.join(sorted(options))}"
            )
        return None
    try:
        return model(**options)
    except ValidationError as e:
        raise GantricksError(describe_validation_error(e, model, f"{name}.")) from None


def to_json(config: RunConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=False)
