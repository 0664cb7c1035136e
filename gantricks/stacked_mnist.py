"""Stacked MNIST: three MNIST digits as the R, G and B channels, 1,000 modes.

The standard mode-collapse test (Metz et al. 2017, "Unrolled GANs"; VEEGAN; PacGAN): each
image stacks three digits drawn uniformly at random, so there are 10³ = 1,000 classes
("modes"), label 100·d_R + 10·d_G + d_B. A generator's coverage is measured by classifying
each channel of its samples with a pre-trained MNIST classifier (here gantricks' shipped
``DigitClassifier``), counting the distinct digit triples among 26,000 samples (the
VEEGAN/PacGAN protocol) and the KL divergence of the 1,000-bin histogram to uniform: see
:mod:`gantricks.metrics.modes`. The dataset itself is built from MNIST by
:func:`gantricks.data.load_stacked_mnist`.
"""

from __future__ import annotations

import torch

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
