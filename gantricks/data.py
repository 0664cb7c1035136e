"""Datasets as uint8 tensors held on the training device, and a no-sync batch sampler.

Every dataset is loaded once into a ``(N, C, H, W)`` uint8 tensor at the training image
size. The sampler draws an epoch's permutation from its own seeded generator and slices
batches on the device, converting to float in [-1, 1] there: no DataLoader workers, no
per-step host transfer. Its state (generator, permutation, position) is checkpointed so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gantricks import glyphs, stacked_mnist
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

# What a user must place where, for datasets that cannot be downloaded here.
_EXPECTED_FILES = {
    "mnist": ("MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
              "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or the same names + .gz, "
              "unpacked on first use)"),
    "fashion-mnist": ("FashionMNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                      "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or + .gz)"),
    "cifar10": ("cifar-10-batches-py", "data_batch_1 ... data_batch_5, test_batch, batches.meta "
                "(the extracted cifar-10-python.tar.gz)"),
    "svhn": (".", "train_32x32.mat and test_32x32.mat"),
    "celeba": ("celeba", "img_align_celeba/ and list_eval_partition.txt, "
               "identity_CelebA.txt, list_attr_celeba.txt, list_bbox_celeba.txt, "
               "list_landmarks_align_celeba.txt"),
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


def _missing(name: str, root: Path, reason: str) -> GantricksError:
    sub, files = _EXPECTED_FILES[name]
    where = (root / sub).resolve()
    return GantricksError(
        f"dataset {name!r} was not found under {str(root)!r} and could not be downloaded "
        f"({reason}). Put {files} in {str(where)!r}, or pass --data-dir pointing at the "
        f"folder that holds {sub!r}."
    )


def _unpack_gz(folder: Path) -> None:
    """Unpack ``NAME.gz`` beside it where ``NAME`` is missing: torchvision reads only the
    unpacked MNIST files unless it downloads them itself."""
    import gzip
    import shutil
    import zlib

    from gantricks.checkpoint import atomic_write

    if not folder.is_dir():
        return
    for gz in folder.glob("*-ubyte.gz"):
        target = gz.with_suffix("")
        if target.exists():
            continue
        try:
            with gzip.open(gz, "rb") as src:
                atomic_write(target, lambda f, src=src: shutil.copyfileobj(src, f))
        except (OSError, EOFError, zlib.error) as e:
            raise GantricksError(
                f"could not unpack {str(gz)!r} to {str(target)!r} ({type(e).__name__}: {e}); "
                f"unpack it yourself (gunzip -k {gz.name}) or check the file"
            ) from None


def _torchvision(name: str, root: Path, train: bool, download: bool) -> tuple[Any, Any]:
    from torchvision import datasets

    def make(dl: bool) -> Any:
        if name == "mnist":
            return datasets.MNIST(root, train=train, download=dl)
        if name == "fashion-mnist":
            return datasets.FashionMNIST(root, train=train, download=dl)
        if name == "cifar10":
            return datasets.CIFAR10(root, train=train, download=dl)
        if name == "svhn":
            return datasets.SVHN(root, split="train" if train else "test", download=dl)
        if name == "celeba":
            return datasets.CelebA(root, split="train" if train else "test", download=dl)
        raise AssertionError(name)

    if name in ("mnist", "fashion-mnist"):
        _unpack_gz(root / _EXPECTED_FILES[name][0])
    try:
        ds = make(False)
    except (PermissionError, ImportError) as e:  # neither missing nor corrupt: say what
        raise GantricksError(f"dataset {name!r} under {str(root)!r}: {e}") from None
    except Exception as not_found:  # torchvision raises RuntimeError or FileNotFoundError
        if not isinstance(not_found, FileNotFoundError) and "not found" not in str(not_found):
            # The files are there but do not read (cut short, another format): downloading
            # would not replace them, and "not found" would send the user looking elsewhere.
            sub, files = _EXPECTED_FILES[name]
            raise GantricksError(
                f"dataset {name!r} under {str((root / sub).resolve())!r} could not be read "
                f"({type(not_found).__name__}: {str(not_found).strip()[:200]}); the files there "
                f"({files}) are probably incomplete or corrupt: replace them (or delete them "
                "to download again)."
            ) from None
        if not download:  # torchvision's text, less its advice to pass download=True
            said = re.sub(r"\s*You can use download=True.*", "", str(not_found)).strip()
            raise _missing(name, root, f"downloads are off: {said}") from None
        try:
            ds = make(True)
        except Exception as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise _missing(name, root, f"download failed: {reason}") from None
    return ds


def _to_tensors(name: str, ds: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if name in ("mnist", "fashion-mnist"):
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()
    if name == "cifar10":
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)
    if name == "svhn":
        return torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels).long()
    raise AssertionError(name)


def _as_list(batch: list[Any]) -> list[Any]:
    """Keep a batch as its list of (image, label) pairs; a module-level function, since
    worker processes started by spawning (macOS, Windows) cannot receive a lambda."""
    return batch


def _load_images_from_files(ds: Any, size: int, desc: str, channels: int = 3) -> torch.Tensor:
    """Decode a file-backed dataset once, centre-cropped and resized to ``size``, as
    ``channels`` (3: RGB; 1: grayscale, for folders of grayscale images)."""
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from tqdm import tqdm

    tf = transforms.Compose(
        [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]
    )
    ds.transform = tf
    loader = DataLoader(ds, batch_size=256, num_workers=2, collate_fn=_as_list)
    out = torch.empty(len(ds), channels, size, size, dtype=torch.uint8)
    i = 0
    for batch in tqdm(loader, desc=desc, unit="batch"):
        broken = [why for img, why in batch if img is None]
        if broken:
            raise GantricksError(
                f"cannot read image {broken[0]}"
                + (f" (and {len(broken) - 1} more in this batch)" if len(broken) > 1 else "")
                + "; remove or replace it"
            )
        imgs = torch.stack([img.expand(channels, -1, -1) for img, _ in batch])
        out[i : i + len(batch)] = imgs
        i += len(batch)
    return out


class _ImageFiles:
    """Every image file under a folder (recursively, sorted), as an unlabelled dataset."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_EXTS)
        self.transform: Any = None
        self.mode = "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        """(image, 0), or (None, why) for a file that does not decode: the loading loop
        names it in a clear error (an exception raised in a worker would arrive wrapped)."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                return self.transform(img.convert(self.mode)), 0
        except Exception as e:  # PIL raises many types for a bad file
            return None, f"{self.files[i]}: {type(e).__name__}: {e}"


_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _folder(root: Path, size: int) -> torch.Tensor:
    if not root.is_dir():
        raise GantricksError(
            f"--dataset folder reads images from --data-dir, but {str(root)!r} is not a folder"
        )
    ds = _ImageFiles(root)
    if len(ds) == 0:
        raise GantricksError(
            f"no images ({', '.join(_IMAGE_EXTS)}) found under {str(root)!r} (searched recursively)"
        )
    # A folder of grayscale images (MNIST-like) stays one channel; any colour image makes
    # the whole folder RGB. Only the headers are read here.
    ds.mode = "L" if all(_is_gray(p) for p in ds.files) else "RGB"
    channels = 1 if ds.mode == "L" else 3
    return _load_images_from_files(ds, size, f"decoding {root}", channels)


def _is_gray(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in ("1", "L", "LA", "I", "I;16", "F")
    except Exception:  # unreadable: decoding reports it with the file's name
        return True


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
        images, labels = _to_tensors(name, _torchvision(name, root, train, download))
    elif name == "stacked-mnist":
        images, labels = load_stacked_mnist(root, train=train, download=download)
    elif name == "celeba":
        ds = _torchvision(name, root, train, download)
        images = _load_images_from_files(ds, size, "decoding CelebA")
        labels = None
    elif name == "folder":
        images, labels = _folder(root, size), None
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
