"""Stacked MNIST: three MNIST digits as the R, G and B channels, 1,000 modes.

The standard mode-collapse test (Metz et al. 2017, "Unrolled GANs"; VEEGAN; PacGAN): each
image stacks three digits drawn uniformly at random, so there are 10³ = 1,000 classes
("modes"), label 100·d_R + 10·d_G + d_B. A generator's coverage is measured by classifying
each channel of its samples with a pre-trained MNIST classifier (here gantricks' shipped
``DigitClassifier``), counting the distinct digit triples among 26,000 samples (the
VEEGAN/PacGAN protocol) and the KL divergence of the 1,000-bin histogram to uniform.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gantricks.errors import GantricksError

TRAIN_SIZE = 128_000  # PacGAN's training-set size
TEST_SIZE = 10_000
EVAL_SAMPLES = 26_000  # samples scored per model in VEEGAN and PacGAN
NUM_MODES = 1000


def generate(
    mnist_images: torch.Tensor, mnist_labels: torch.Tensor, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` stacked images (uint8, (n, 3, H, W)) and int64 labels 100·d_R + 10·d_G + d_B.

    ``mnist_images`` is (N, 1, H, W) or (N, H, W) uint8 with digit labels (N,). The three
    digits of each image are drawn independently and uniformly (with replacement) from a
    ``torch.Generator`` seeded with ``seed``: the same inputs and seed give the same images.
    """
    if mnist_images.dim() == 4:
        if mnist_images.shape[1] != 1:
            raise ValueError(f"need single-channel digits, got {tuple(mnist_images.shape)}")
        mnist_images = mnist_images[:, 0]
    if mnist_images.dim() != 3 or mnist_labels.shape != mnist_images.shape[:1]:
        raise ValueError(
            f"need images (N, [1,] H, W) and labels (N,), got {tuple(mnist_images.shape)} and "
            f"{tuple(mnist_labels.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, mnist_images.shape[0], (n, 3), generator=gen)
    images = mnist_images[idx]  # (n, 3, H, W): one digit per channel
    digits = mnist_labels.long()[idx]
    labels = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return images.contiguous(), labels


@lru_cache(maxsize=4)
def _load(
    root: str, train: bool, n: int, seed: int, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    from gantricks.data import load_dataset

    try:
        mnist = load_dataset("mnist", root, image_size=28, train=train, download=download)
    except GantricksError as e:
        raise GantricksError(f"stacked-mnist is built from MNIST: {e}") from None
    assert mnist.labels is not None
    # Different generator seeds for the two splits, as glyphs does.
    return generate(mnist.images, mnist.labels, n, seed=2 * seed + (0 if train else 1))


def load(
    data_dir: str | Path = "data",
    train: bool = True,
    n: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked MNIST built from MNIST's train (or test) split under ``data_dir``.

    ``n`` defaults to 128,000 for train (as PacGAN) and 10,000 for test. Built once per
    process and arguments (callers must not modify the returned tensors in place).
    """
    size = n if n is not None else (TRAIN_SIZE if train else TEST_SIZE)
    root = str(Path(data_dir).expanduser().resolve())
    return _load(root, bool(train), int(size), int(seed), bool(download))


def mode_statistics(channel_probs: list[torch.Tensor]) -> dict[str, Any]:
    """Mode statistics from the three channels' (N, 10) class probabilities.

    Returns ``modes_covered`` (digit triples seen at least once, of 1,000), ``kl_to_uniform``
    (KL of the 1,000-bin histogram to uniform, nats), ``num_samples`` and ``histogram``
    (1,000 counts, index 100·a + 10·b + c).
    """
    from gantricks.metrics import scores

    if len(channel_probs) != 3:
        raise ValueError(f"need predictions for 3 channels, got {len(channel_probs)}")
    digits = [p.argmax(dim=1) for p in channel_probs]
    modes = digits[0] * 100 + digits[1] * 10 + digits[2]
    counts = torch.bincount(modes, minlength=NUM_MODES)
    return {
        "modes_covered": scores.coverage(counts),
        "kl_to_uniform": scores.kl_to_uniform(counts),
        "num_samples": int(modes.numel()),
        "histogram": [int(c) for c in counts],
    }


def mode_coverage(
    model: nn.Module,
    images_uint8: torch.Tensor,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> dict[str, Any]:
    """How many of the 1,000 modes uint8 images (N, 3, H, W) cover, and how evenly.

    Each channel is classified with ``model`` (the MNIST ``DigitClassifier``, see
    ``gantricks.metrics.classifier.load_classifier("mnist")``); the mode of an image is
    100·a + 10·b + c for channel digits a, b, c. The VEEGAN/PacGAN protocol scores 26,000
    samples (``EVAL_SAMPLES``); with fewer, not every mode can be expected to appear even
    for real data. Returns ``modes_covered``, ``kl_to_uniform``, ``num_samples`` and the
    1,000-bin ``histogram`` (see ``mode_statistics``).
    """
    from gantricks.metrics.classifier import predict_probs

    if images_uint8.dim() != 4 or images_uint8.shape[1] != 3:
        raise ValueError(f"need Stacked MNIST images (N, 3, H, W), got {tuple(images_uint8.shape)}")
    probs = [predict_probs(model, images_uint8[:, c : c + 1], device, batch_size) for c in range(3)]
    return mode_statistics(probs)
