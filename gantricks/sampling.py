"""Drawing images from a generator, and saving them as grids."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from gantricks.data import to_uint8
from gantricks.distributed import local_statistics
from gantricks.errors import GantricksError
from gantricks.files import atomic_write_bytes


def draw_latent(
    n: int,
    nz: int,
    kind: str = "normal",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` latent vectors: N(0, I) (``normal``) or U(−1, 1) in every dimension
    (``uniform``), from ``generator`` on ``device`` (its device by default)."""
    if kind == "uniform":
        return torch.rand(n, nz, generator=generator, device=device).mul_(2).sub_(1)
    if kind != "normal":
        raise ValueError(f"unknown latent distribution {kind!r}; allowed: normal, uniform")
    return torch.randn(n, nz, generator=generator, device=device)


def fixed_noise(
    n: int, nz: int, seed: int, device: torch.device | str = "cpu", kind: str = "normal"
) -> torch.Tensor:
    """The same ``n`` latent vectors for a given seed on every device (drawn on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    return draw_latent(n, nz, kind, generator=gen).to(device)


@contextmanager
def batch_statistics(module: nn.Module) -> Iterator[None]:
    """Run ``module`` as in training (batch norm on batch statistics, this process's batch
    alone) and leave no trace: batch norm's running statistics are restored on exit (other
    buffers are the module's own business: a weight-normalised layer's fixed scale is set
    by its data-dependent initialisation inside this)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [[b.clone() for b in m.buffers(recurse=False)] for m in norms]
    try:
        with local_statistics():
            yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved, strict=True):
                for buf, value in zip(m.buffers(recurse=False), values, strict=True):
                    buf.copy_(value)


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` holds batch-norm layers (of any dimension, synced or not)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@contextmanager
def batch_norm_from_first(module: nn.Module, n: int) -> Iterator[None]:
    """Inside: every batch-norm layer of ``module`` normalises its whole input with the
    statistics of the first ``n`` rows (e.g. a real batch, with generated images after it),
    in fp32, without updating its running statistics. Gradients flow through the
    statistics of those rows."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def by_first(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
        wide = x.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean = wide[:n].mean(dims)
        var = wide[:n].var(dims, unbiased=False)
        y = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + bn.eps)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        return y.to(x.dtype)

    for bn in norms:
        bn.forward = lambda x, bn=bn: by_first(bn, x)
    try:
        yield
    finally:
        for bn in norms:
            del bn.forward  # back to the class's forward


@contextmanager
def feature_mode(module: nn.Module) -> Iterator[None]:
    """:func:`batch_statistics` for batch norm, evaluation mode for everything else
    (dropout, input noise): deterministic features computed as batch norm saw them in
    training. Every module's mode and every buffer is restored on exit."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    try:
        with batch_statistics(module):
            yield
    finally:
        for m, training in modes.items():
            m.train(training)


@contextmanager
def running_statistics_from(module: nn.Module, batches: Iterable[torch.Tensor]) -> Iterator[None]:
    """``module`` in evaluation mode, its batch-norm running statistics (if it has batch
    norm) the plain average over ``batches`` (momentum None); on exit its modes, buffers
    and momenta are restored.

    Training updates the running statistics on every pass, generated images included, so
    a discriminator tested with them normalises real images partly by fake ones; and
    averaged parameters never produced them at all.
    """
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    modes = {m: m.training for m in module.modules()}
    momenta = [m.momentum for m in norms]
    try:
        with batch_statistics(module):  # every buffer restored on exit
            module.eval()  # noise and dropout off: only batch norm sees the batches
            if norms:
                with torch.no_grad():
                    for m in norms:
                        m.reset_running_stats()
                        m.momentum = None  # cumulative average: every batch counts the same
                        m.train()
                    for x in batches:
                        module(x)
                    module.eval()
            yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)


@contextmanager
def isolated_rng(device: torch.device | str | None = None) -> Iterator[None]:
    """Leave torch's global random streams as they were found: the CPU's, and the CUDA
    device's when ``device`` is one (only that device's, so no other GPU is initialised).

    Evaluation and sample grids run between training steps; whatever they draw (dropout or
    noise layers in a generator, a network's random initialisation before its weights
    load) must not shift training's stream, or a run with evaluations in between, stopped
    and resumed, would no longer equal the same run made in one go.
    """
    devices: list[int] = []
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        yield


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Images for ``z`` in [-1, 1], without changing the generator or the global RNG.

    DCGAN samples are drawn with batch statistics, as during training (the generator stays
    in train mode); its running-stat buffers are restored afterwards, and torch's global
    random state too (:func:`isolated_rng`), so sampling never changes a checkpoint or a
    resumed run.
    """
    with isolated_rng(z.device), batch_statistics(generator):
        return torch.cat([generator(chunk) for chunk in z.split(batch_size)])


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """(3, H, W) uint8 grid of float images in [-1, 1], quantised as a PNG stores them."""
    n = images.shape[0]
    nrow = nrow or max(1, int(n**0.5))
    return make_grid(to_uint8(images.detach().cpu()), nrow=nrow, padding=2, pad_value=0)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save float images in [-1, 1] as one image grid (PNG, or the format the file name's
    extension names), atomically: a failed write leaves no partial file
    (:func:`gantricks.files.atomic_write`)."""
    path = Path(path)
    if nrow is not None and nrow <= 0:
        raise GantricksError(f"images per row must be a positive number, got {nrow}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise GantricksError(
            f"cannot tell an image format from the file name {str(path)!r}; end it in .png "
            "(or another image extension: .jpg, .webp, ...)"
        )
    grid = image_grid(images, nrow)
    buffer = io.BytesIO()
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())
