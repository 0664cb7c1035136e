"""The networks a run trains, chosen by name (``--model NAME``), and the pair plugins see.

Built in: ``dcgan`` (Radford et al. 2015; the default), ``improved-gan`` (the Improved-GAN
authors' CIFAR-10/SVHN convolutional networks) and ``improved-gan-mlp`` (their MNIST
multilayer perceptrons). Other packages add models through the entry-point group
``gantricks.models``: the entry point names a :class:`ModelSpec` (or a function with
``build``'s signature)::

    [project.entry-points."gantricks.models"]
    my-net = "mypkg.nets:SPEC"

Every model's discriminator is a :class:`GanDiscriminator` (features, feature transforms,
head; see :mod:`gantricks.models.discriminator`), and its generator maps z ``(N, nz)`` to
images in [−1, 1] with ``nz``, ``channels`` and ``image_size`` attributes
(:class:`gantricks.GeneratorLike`).
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from gantricks.errors import GantricksError
from gantricks.models import dcgan, improved_gan, mlp
from gantricks.models.dcgan import Discriminator, Generator, init_weights
from gantricks.models.discriminator import GanDiscriminator

__all__ = [
    "MODELS",
    "Discriminator",
    "GanDiscriminator",
    "Generator",
    "ModelSpec",
    "Models",
    "available_models",
    "build_models",
    "conv_blocks",
    "init_weights",
]

ENTRY_POINT_GROUP = "gantricks.models"
Build = Callable[[int, int, int, int, int], tuple[nn.Module, GanDiscriminator]]


@dataclass(frozen=True)
class ModelSpec:
    """A named pair of networks: ``build(nz, channels, image_size, ngf, ndf)`` returns the
    generator and the discriminator, initialised from torch's global RNG."""

    name: str
    description: str
    build: Build


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("dcgan", "DCGAN (Radford et al. 2015), widths from ngf/ndf", dcgan.build),
        ModelSpec(
            "improved-gan",
            "the Improved-GAN authors' CIFAR-10 convnets: weight norm, no BN in D, 192 pooled "
            "features",
            improved_gan.build,
        ),
        ModelSpec(
            "improved-gan-mlp",
            "the Improved-GAN authors' MNIST MLPs: weight norm and Gaussian noise in D",
            mlp.build,
        ),
    )
}


def available_models() -> dict[str, ModelSpec]:
    """The built-in models and those installed packages register, by name."""
    out = dict(MODELS)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in out:
            continue
        try:
            obj = ep.load()
        except Exception as e:
            raise GantricksError(
                f"model {ep.name!r} (entry point {ep.value}) failed to import: {e!r}"
            ) from e
        out[ep.name] = obj if isinstance(obj, ModelSpec) else ModelSpec(ep.name, "", obj)
    return out


def model_spec(name: str) -> ModelSpec:
    """The model called ``name``, or an error listing the models there are."""
    models = available_models()
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise GantricksError(f"model={name!r} is not a model{hint}; allowed: {', '.join(models)}")


@dataclass
class Models:
    """The two players, and modules plugins keep beside them.

    Plugins may replace either player, or modules inside them (``gantricks_build_models``).
    ``extra`` holds modules no optimiser trains (an exponential moving average of G, say):
    they are saved in checkpoints, moved to the device and rebuilt for sampling like the
    players.
    """

    generator: nn.Module
    discriminator: nn.Module
    nz: int
    extra: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    #: The generator a plugin chose for sampling (``gantricks_sampling_generator``), if any.
    for_sampling: nn.Module | None = None

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator samples are drawn from: ``for_sampling``, else ``generator``."""
        return self.for_sampling if self.for_sampling is not None else self.generator

    def to(self, device: torch.device) -> Models:
        self.generator.to(device)
        self.discriminator.to(device)
        self.extra.to(device)
        return self


def build_models(
    nz: int, channels: int, image_size: int, ngf: int, ndf: int, model: str = "dcgan"
) -> Models:
    """The pair ``model`` names, initialised from the current torch RNG state."""
    g, d = model_spec(model).build(nz, channels, image_size, ngf, ndf)
    return Models(generator=g, discriminator=d, nz=nz)


def conv_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """The modules ending each block of a discriminator's trunk, first block first
    (:meth:`GanDiscriminator.blocks`); empty for a discriminator without blocks."""
    blocks = getattr(discriminator, "blocks", None)
    return blocks() if callable(blocks) else []
