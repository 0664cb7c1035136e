"""Reading datasets from disk: torchvision's datasets (downloaded where the network
allows, a clear error naming the files and folder where not) and folders of images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from gantricks.errors import GantricksError

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


def torchvision_dataset(name: str, root: Path, train: bool, download: bool) -> tuple[Any, Any]:
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


def to_tensors(name: str, ds: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
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


def load_images_from_files(ds: Any, size: int, desc: str, channels: int = 3) -> torch.Tensor:
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
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
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


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_folder(root: Path, size: int) -> torch.Tensor:
    if not root.is_dir():
        raise GantricksError(
            f"--dataset folder reads images from --data-dir, but {str(root)!r} is not a folder"
        )
    ds = _ImageFiles(root)
    if len(ds) == 0:
        raise GantricksError(
            f"no images ({', '.join(IMAGE_EXTS)}) found under {str(root)!r} (searched recursively)"
        )
    # A folder of grayscale images (MNIST-like) stays one channel; any colour image makes
    # the whole folder RGB. Only the headers are read here.
    ds.mode = "L" if all(_is_gray(p) for p in ds.files) else "RGB"
    channels = 1 if ds.mode == "L" else 3
    return load_images_from_files(ds, size, f"decoding {root}", channels)


def _is_gray(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in ("1", "L", "LA", "I", "I;16", "F")
    except Exception:  # unreadable: decoding reports it with the file's name
        return True
