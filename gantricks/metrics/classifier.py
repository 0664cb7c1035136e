"""In-domain classifier scores: a small CNN per dataset, shipped with gantricks or trained once.

Where an ImageNet Inception network says little (MNIST, glyphs, Fashion-MNIST and, channel
by channel, Stacked MNIST), a classifier trained on the dataset itself gives the same
Inception Score formula (the "classifier score"), a class histogram, the number of classes
covered and the KL divergence of the histogram to uniform.

Scores are only comparable if the scoring network is fixed, as Inception's weights are. So
the classifiers of the datasets listed in ``weights/manifest.json`` (glyphs and MNIST) are
package data: trained by ``benchmarks/train_classifiers.py`` (seeded, one CPU thread), each
under a version name (``glyphs-v2``), pinned by the SHA-256 the manifest records and checked
on every load; nothing is trained for them. A retrained classifier is shipped under a new
version name. A dataset without a shipped classifier (Fashion-MNIST unless a maintainer has
shipped one) trains its own on first use (seeded: the same data, seed and device give the
same network on CPU), saved atomically to ``cache_dir()/classifiers/{dataset}-v1.pt``; a
file lock beside it makes a second process wait for the first's training instead of
training too. Reports name the classifier (``name``, ``source``), its architecture, test
accuracy and the SHA-256 of the weights file, so two numbers computed with different
classifiers are never mixed up.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gantricks.data import load_dataset, to_float
from gantricks.errors import GantricksError
from gantricks.metrics.digit_classifier import (
    SIZE,
    DigitClassifier,
    _accuracy,
    classifier_scores,
    predict_probs,
)

__all__ = ["DigitClassifier", "classifier_scores", "load_classifier", "predict_probs"]

CLASSIFIER_DATASETS = ("glyphs", "mnist", "fashion-mnist")
ARCHITECTURE = "DigitClassifier-v1"
VERSION = 1
DEFAULT_EPOCHS = 3
#: The shipped classifiers' manifest, in the package's ``weights`` folder.
MANIFEST = "manifest.json"
_SHIFT = 2  # random-shift augmentation, in pixels each way


def cache_dir() -> Path:
    """Where gantricks caches what it builds: ``$GANTRICKS_CACHE``, else ``~/.cache/gantricks``."""
    env = os.environ.get("GANTRICKS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gantricks"


def classifier_path(dataset: str) -> Path:
    """The cache file of ``dataset``'s classifier when trained on first use (whether or not
    it exists yet; a shipped classifier is never read from here)."""
    return cache_dir() / "classifiers" / f"{dataset}-v{VERSION}.pt"


def _check_dataset(dataset: str) -> None:
    if dataset not in CLASSIFIER_DATASETS:
        raise GantricksError(
            f"there is no in-domain classifier for dataset {dataset!r}; allowed: "
            f"{', '.join(CLASSIFIER_DATASETS)} (Stacked MNIST uses the mnist classifier on "
            f"each channel)"
        )


def _random_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each uint8 image by up to ``_SHIFT`` pixels each way, filling with black.

    Offsets come from ``gen`` (on the CPU) so training is reproducible on any device.
    """
    n, _, h, w = x.shape
    pad = F.pad(x, (_SHIFT,) * 4)
    off = torch.randint(0, 2 * _SHIFT + 1, (2, n, 1), generator=gen).to(x.device)
    rows = (off[0] + torch.arange(h, device=x.device)).view(n, h, 1)
    cols = (off[1] + torch.arange(w, device=x.device)).view(n, 1, w)
    idx = torch.arange(n, device=x.device).view(n, 1, 1)
    return pad[idx, 0, rows, cols].unsqueeze(1)


def train_classifier(
    dataset: str,
    data_dir: str | Path = "data",
    device: str | torch.device = "cpu",
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    progress: bool = True,
    download: bool = True,
    batch_size: int = 128,
    lr: float = 3e-3,
    max_train: int | None = None,
    max_test: int | None = None,
) -> tuple[DigitClassifier, float]:
    """Train a DigitClassifier on ``dataset``'s training split; return it and its test accuracy.

    Adam with a one-cycle learning-rate schedule, batch ``batch_size``, random shifts of up
    to 2 pixels. Initialisation, shuffling, augmentation and dropout all draw from ``seed``
    (the global RNG state is left untouched). ``max_train`` / ``max_test`` use only the first
    images of each split (for quick tests). The model is returned in eval mode on ``device``;
    the accuracy is measured on the dataset's test split.
    """
    _check_dataset(dataset)
    if epochs < 1:
        raise GantricksError(f"classifier epochs must be at least 1, got {epochs}")
    dev = torch.device(device)
    train = load_dataset(dataset, data_dir, image_size=SIZE, train=True, download=download)
    test = load_dataset(dataset, data_dir, image_size=SIZE, train=False, download=download)
    assert train.labels is not None and test.labels is not None
    x, y = train.images[:max_train].to(dev), train.labels[:max_train].to(dev)
    n = x.shape[0]
    steps_per_epoch = max(1, n // batch_size)  # the last partial batch is dropped
    total = epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    # fork_rng: initialisation and dropout use the global RNGs; seed them without
    # disturbing the caller's random state.
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = DigitClassifier().to(dev)
        # channels_last: about 1.5x faster convolutions on CPU (oneDNN) and on tensor cores.
        cl = torch.channels_last
        model = model.to(memory_format=cl)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
        model.train()
        bar = tqdm(
            total=total, desc=f"training {dataset} classifier", unit="step", disable=not progress
        )
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(dev)
            for step in range(steps_per_epoch):
                idx = perm[step * batch_size : (step + 1) * batch_size]
                xb = to_float(_random_shift(x[idx], gen)).contiguous(memory_format=cl)
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
                if step % 50 == 0:  # .item() syncs the device: read the loss rarely
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    model = model.to(memory_format=torch.contiguous_format).eval()
    acc = _accuracy(model, test.images[:max_test], test.labels[:max_test], dev)
    return model, acc


def save_classifier(model: DigitClassifier, path: str | Path, info: dict[str, Any]) -> Path:
    """Save weights and ``info`` (JSON-serialisable) to ``path`` atomically (temp + rename)."""
    from gantricks.checkpoint import atomic_torch_save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # A JSON round trip turns str subclasses (torch.__version__) and the like into plain
    # values, which weights_only loading accepts and which reports can embed as they are.
    plain = json.loads(json.dumps(info))
    payload = {"architecture": ARCHITECTURE, "version": VERSION, "info": plain, "state": state}
    return atomic_torch_save(payload, path)


def _corrupt(dataset: str, path: Path, reason: str) -> GantricksError:
    return GantricksError(
        f"the cached {dataset} classifier {str(path)!r} is corrupt or from another version "
        f"({reason}); delete that file and it will be trained again on next use"
    )


def _read(
    path: Path,
    dataset: str,
    device: torch.device,
    corrupt: Callable[[str, Path, str], GantricksError] = _corrupt,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """Load a classifier file; any problem with it is a GantricksError (from ``corrupt``)."""
    from gantricks.metrics.inception import file_hash

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's own message here suggests unsafe loading; the type name is enough.
        reason = f"it cannot be read as a torch file: {type(e).__name__}"
        raise corrupt(dataset, path, reason) from None
    try:
        if not isinstance(payload, dict) or payload.get("architecture") != ARCHITECTURE:
            raise ValueError(f"it is not a {ARCHITECTURE} file")
        model = DigitClassifier()
        model.load_state_dict(payload["state"])
        saved = dict(payload["info"])
        if saved.get("dataset") != dataset:
            raise ValueError(f"it holds the {saved.get('dataset')!r} classifier")
        accuracy = float(saved["test_accuracy"])
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise corrupt(dataset, path, first) from None
    info = {
        **saved,
        "dataset": dataset,
        "test_accuracy": accuracy,
        "sha256": file_hash(path, 16),
        "path": str(path),
        "architecture": ARCHITECTURE,
    }
    return model.to(device).eval(), info


# ------------------------------------------------------------------ shipped classifiers
def weights_dir() -> Traversable:
    """The package folder that holds the shipped classifiers and their manifest."""
    return resources.files("gantricks.metrics") / "weights"


def manifest() -> dict[str, dict[str, Any]]:
    """The shipped classifiers, by dataset, as ``weights/manifest.json`` records them.

    Each entry: ``name`` (version name, e.g. ``glyphs-v2``), ``file``, ``sha256`` (all 64
    hex digits; the pin), ``architecture``, ``test_accuracy`` and how it was trained
    (``seed``, ``epochs``, ``threads``, ``torch``, ``command``, ...).
    """
    entry = weights_dir() / MANIFEST
    try:
        return dict(json.loads(entry.read_text())["classifiers"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        # Not an empty manifest: the shipped datasets would silently train their own.
        raise GantricksError(
            f"the manifest of gantricks' shipped classifiers ({entry}) is missing or "
            f"unreadable ({type(e).__name__}); this installation is incomplete: reinstall "
            f"gantricks (its package data includes gantricks/metrics/weights/)"
        ) from None


def shipped_datasets() -> tuple[str, ...]:
    """The datasets whose classifier is package data (never trained on this machine)."""
    return tuple(d for d in CLASSIFIER_DATASETS if d in manifest())


def _sha256(path: Path) -> str:
    from gantricks.metrics.inception import file_hash

    return file_hash(path, 64)


def _shipped_corrupt(dataset: str, path: Path, reason: str) -> GantricksError:
    return GantricksError(
        f"the shipped {dataset} classifier {str(path)!r} matches its pinned hash but cannot be "
        f"loaded ({reason}); this gantricks installation is inconsistent: reinstall it"
    )


def _load_shipped(
    dataset: str, entry: dict[str, Any], device: torch.device
) -> tuple[DigitClassifier, dict[str, Any]]:
    """Load a shipped classifier after checking its file against the manifest's SHA-256."""
    with resources.as_file(weights_dir() / entry["file"]) as path:
        expected = str(entry["sha256"])
        found = _sha256(path) if path.is_file() else "(no such file)"
        if found != expected:
            raise GantricksError(
                f"the shipped {dataset} classifier {entry['name']} ({str(path)!r}) does not "
                f"match the hash it is pinned by: expected sha256 {expected}, found {found}. "
                f"Scores made with it would not be comparable with anyone else's, so it is not "
                f"used. The file was changed, truncated or not installed (a Git LFS pointer or "
                f"a partial checkout looks like this): restore it (`git checkout -- "
                f"gantricks/metrics/weights/{entry['file']}`) or reinstall gantricks. A "
                f"retrained classifier must be shipped under a new version name, with the "
                f"manifest written by benchmarks/train_classifiers.py."
            )
        model, info = _read(path, dataset, device, _shipped_corrupt)
    info.update(
        name=str(entry["name"]),
        source="shipped",
        test_accuracy=float(entry["test_accuracy"]),
    )
    return model, info


# ------------------------------------------------------------ trained on first use
@contextmanager
def _training_lock(path: Path, dataset: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock``: one process trains, the others wait.

    ``fcntl.flock`` (Linux, macOS); where it does not exist the lock is skipped.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the supported platforms
        yield
        return
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"another process is training the {dataset} classifier; waiting for it "
                f"(lock {lock})",
                file=sys.stderr,
            )
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def load_classifier(
    dataset: str,
    data_dir: str | Path = "data",
    device: str | torch.device = "cpu",
    download: bool = True,
    train_if_missing: bool = True,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """``dataset``'s classifier (eval mode, on ``device``) and its info.

    A shipped classifier (see :func:`manifest`) is loaded from the package after its SHA-256
    is checked; nothing is trained and ``data_dir`` is not read. Otherwise
    ``cache_dir()/classifiers/{dataset}-v1.pt`` is loaded if it exists; if not, it is trained
    on ``dataset`` (read from ``data_dir``) under a file lock (a process that finds the lock
    held waits, then loads the other's file), saved atomically and loaded back, so a fresh
    and a cached classifier are the same bytes.

    info: ``name`` (``glyphs-v2``; ``{dataset}-local`` for one trained here), ``source``
    (``shipped`` or ``trained on first use``), ``dataset``, ``test_accuracy``, ``sha256``
    (first 16 hex digits, of the weights file), ``path``, ``architecture``, and how it was
    trained (``epochs``, ``seed``, ``device`` type, ``torch`` version, ...).
    """
    _check_dataset(dataset)
    dev = torch.device(device)
    entry = manifest().get(dataset)
    if entry is not None:
        return _load_shipped(dataset, entry, dev)
    path = classifier_path(dataset)
    if not path.is_file():
        if not train_if_missing:
            raise GantricksError(
                f"the {dataset} classifier is not cached at {str(path)!r} and training it was "
                f"not allowed; run once with training allowed, or set GANTRICKS_CACHE to a "
                f"folder that holds classifiers/{path.name}"
            )
        with _training_lock(path, dataset):
            if not path.is_file():  # not trained meanwhile by the process we waited for
                _train_and_save(dataset, path, data_dir, dev, download)
    model, info = _read(path, dataset, dev)
    info.update(name=f"{dataset}-local", source="trained on first use")
    return model, info


def _train_and_save(
    dataset: str, path: Path, data_dir: str | Path, dev: torch.device, download: bool
) -> None:
    print(
        f"training the {dataset} classifier once (gantricks ships none for it); cached at {path}",
        file=sys.stderr,
    )
    model, acc = train_classifier(dataset, data_dir, dev, download=download)
    # No timings in the file: the same training then gives the same bytes, so equal
    # sha256 prefixes in two reports mean the same network.
    info = {
        "dataset": dataset,
        "test_accuracy": acc,
        "epochs": DEFAULT_EPOCHS,
        "seed": 0,
        "device": dev.type,
        "torch": str(torch.__version__),
    }
    save_classifier(model, path, info)
