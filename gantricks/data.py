"""Datasets as uint8 tensors held on the training device, and a no-sync batch sampler.

Every dataset is loaded once into a ``(N, C, H, W)`` uint8 tensor at the training image
size. The sampler draws an epoch's permutation from its own seeded generator and slices
batches on the device, converting to float in [-1, 1] there: no DataLoader workers, no
per-step host transfer. Its state (generator, permutation, position) is checkpointed so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gantricks import glyphs, stacked_mnist
from gantricks.datasets import image_folder, load_images_from_files, to_tensors, torchvision_dataset
from gantricks.errors import GantricksError

NATIVE_SIZE = {
    "glyphs": 28, "mnist": 28, "fashion-mnist": 28, "stacked-mnist": 28, "cifar10": 32, "svhn": 32,
    "celeba": 64, "folder": 64,
}  # fmt: skip

#: Datasets with class labels, and how many classes.
NUM_CLASSES = {
    "glyphs": glyphs.NUM_CLASSES, "mnist": 10, "fashion-mnist": 10, "cifar10": 10, "svhn": 10,
    "stacked-mnist": 1000,
}  # fmt: skip


@dataclass
class ImageData:
    """A dataset in memory: uint8 images ``(N, C, H, W)`` and optional int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int | None

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 image tensor with antialiasing (done once, at load time)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        chunk = images[start : start + 4096].float()
        resized = F.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + 4096] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


def load_dataset(
    name: str,
    data_dir: str | Path = "data",
    image_size: int | None = None,
    train: bool = True,
    download: bool = True,
    seed: int = 0,
) -> ImageData:
    """Load a dataset split as uint8 tensors at ``image_size`` (default: native size)."""
    root = Path(data_dir).expanduser()
    size = image_size or NATIVE_SIZE[name]
    labels: torch.Tensor | None
    if name == "glyphs":
        images, labels = glyphs.load(train, seed=seed)
    elif name in ("mnist", "fashion-mnist", "cifar10", "svhn"):
        images, labels = to_tensors(name, torchvision_dataset(name, root, train, download))
    elif name == "stacked-mnist":
        images, labels = load_stacked_mnist(root, train=train, download=download)
    elif name == "celeba":
        ds = torchvision_dataset(name, root, train, download)
        images = load_images_from_files(ds, size, "decoding CelebA")
        labels = None
    elif name == "folder":
        images, labels = image_folder(root, size), None
    else:
        raise GantricksError(f"unknown dataset {name!r}; allowed: {', '.join(NATIVE_SIZE)}")
    return ImageData(name, resize_uint8(images, size), labels, NUM_CLASSES.get(name))


def load_stacked_mnist(
    data_dir: str | Path = "data",
    train: bool = True,
    n: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked MNIST (uint8 images, labels) built from MNIST's train (or test) split under
    ``data_dir`` (see :mod:`gantricks.stacked_mnist`).

    ``n`` defaults to 128,000 for train (as PacGAN) and 10,000 for test. Built once per
    process and arguments (callers must not modify the returned tensors in place).
    """
    size = n if n is not None else (stacked_mnist.TRAIN_SIZE if train else stacked_mnist.TEST_SIZE)
    root = str(Path(data_dir).expanduser().resolve())
    return _stacked(root, bool(train), int(size), int(seed), bool(download))


@lru_cache(maxsize=4)
def _stacked(
    root: str, train: bool, n: int, seed: int, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        mnist = load_dataset("mnist", root, image_size=28, train=train, download=download)
    except GantricksError as e:
        raise GantricksError(f"stacked-mnist is built from MNIST: {e}") from None
    assert mnist.labels is not None
    # Different generator seeds for the two splits, as glyphs does.
    return stacked_mnist.generate(
        mnist.images, mnist.labels, n, seed=2 * seed + (0 if train else 1)
    )


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], on whatever device the tensor is on."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounding exactly as a saved PNG would store it."""
    return images.add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


class BatchSampler:
    """Endless shuffled batches from device-resident uint8 images, without host syncs."""

    def __init__(
        self, images: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        global_batch = batch_size * world_size
        if images.shape[0] < global_batch:
            raise GantricksError(
                f"batch_size {batch_size} × {world_size} process(es) is larger than the "
                f"dataset ({images.shape[0]} images)"
            )
        self.images = images
        self.batch_size = batch_size
        # Every rank draws the same global batch and takes its own slice of it, so a
        # multi-process run sees exactly the data of one process with the global batch.
        self.global_batch = global_batch
        self.offset = rank * batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.batches_per_epoch = images.shape[0] // global_batch  # last partial batch dropped
        self.epoch = 0
        self.position = 0
        self.perm = self._new_perm()

    def _new_perm(self) -> torch.Tensor:
        perm = torch.randperm(self.images.shape[0], generator=self.generator)
        return perm.to(self.images.device, non_blocking=True)

    def next(self) -> torch.Tensor:
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self.perm = self._new_perm()
        start = self.position * self.global_batch + self.offset
        idx = self.perm[start : start + self.batch_size]
        self.position += 1
        return to_float(self.images.index_select(0, idx))

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.position / self.batches_per_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "perm": self.perm.cpu(),
            "epoch": self.epoch,
            "position": self.position,
            "global_batch": self.global_batch,
        }

    def load_state_dict(self, state: dict[str, Any], what: str = "the data") -> None:
        """Continue a saved order; it must have shuffled the same number of images in
        batches of the same global size (positions count batches), else the order means
        nothing here and resuming would silently train on other batches."""
        saved_images = int(state["perm"].numel())
        if saved_images != self.images.shape[0]:
            raise GantricksError(
                f"the checkpoint shuffled {what} as {saved_images} images; this run has "
                f"{self.images.shape[0]}. Resume with the dataset the run was started with "
                "(same --dataset, --data-dir and image size), or start a new run."
            )
        saved_batch = state.get("global_batch")  # absent in older checkpoints
        if saved_batch is not None and int(saved_batch) != self.global_batch:
            raise GantricksError(
                f"the checkpoint drew {what} in global batches of {saved_batch}; this run "
                f"asks for {self.global_batch} (batch_size {self.batch_size} × "
                f"{self.global_batch // self.batch_size} process(es)). Steps, epochs and the "
                "data order are counted in batches, so a run cannot change its batch size: "
                f"resume with a global batch of {saved_batch}, or start a new run."
            )
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].to(self.images.device)
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


def balanced_subset(
    labels: torch.Tensor, per_class: int, num_classes: int, seed: int
) -> torch.Tensor:
    """Indices of ``per_class`` examples of every class, drawn with a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for k in range(num_classes):
        members = (labels == k).nonzero().flatten()
        if len(members) < per_class:
            raise GantricksError(
                f"labels_per_class={per_class}: class {k} has only "
                f"{len(members)} training examples; allowed: 1..{len(members)}"
            )
        picked.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values
