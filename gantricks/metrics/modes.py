"""Mode coverage on Stacked MNIST: which of the 1,000 digit triples samples show, and how
evenly (the VEEGAN/PacGAN protocol; see :mod:`gantricks.stacked_mnist`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gantricks.metrics import scores
from gantricks.metrics.classifier import predict_probs
from gantricks.stacked_mnist import NUM_MODES


def mode_statistics(channel_probs: list[torch.Tensor]) -> dict[str, Any]:
    """Mode statistics from the three channels' (N, 10) class probabilities.

    Returns ``modes_covered`` (digit triples seen at least once, of 1,000), ``kl_to_uniform``
    (KL of the 1,000-bin histogram to uniform, nats), ``num_samples`` and ``histogram``
    (1,000 counts, index 100·a + 10·b + c).
    """
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
    if images_uint8.dim() != 4 or images_uint8.shape[1] != 3:
        raise ValueError(f"need Stacked MNIST images (N, 3, H, W), got {tuple(images_uint8.shape)}")
    probs = [predict_probs(model, images_uint8[:, c : c + 1], device, batch_size) for c in range(3)]
    return mode_statistics(probs)
