"""The in-domain classifier network, and what it computes: class probabilities of samples,
and the scores read from them (the Inception Score formula, classes covered, KL to
uniform). Which weights it has (shipped or trained) is :mod:`gantricks.metrics.classifier`'s
business."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gantricks.data import resize_uint8, to_float
from gantricks.metrics import scores

SIZE = 28
NUM_CLASSES = 10
#: Width of the layer before the last linear one (what ``classifier_fid`` compares).
FEATURE_DIM = 128


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    # Unpadded 3x3 convolutions: MNIST digits sit inside a 4-pixel empty border, so padding
    # buys no accuracy and costs about 40% more time on CPU.
    return [nn.Conv2d(c_in, c_out, 3, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DigitClassifier(nn.Module):
    """Small CNN: (N, 1, 28, 28) float in [-1, 1] -> (N, 10) logits.

    conv32-conv32-pool-conv64-conv64-pool-fc128 (3x3 unpadded convolutions with batch
    norm, dropout before the last layer); about 0.2 M parameters.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv(1, 32),  # 26
            *_conv(32, 32),  # 24
            nn.MaxPool2d(2),  # 12
            *_conv(32, 64),  # 10
            *_conv(64, 64),  # 8
            nn.MaxPool2d(2),  # 4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURE_DIM),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(FEATURE_DIM, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of (N, 1, 28, 28) images in [-1, 1]."""
        return self.head(self.features(x))


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: Any) -> float:
    probs = predict_probs(model, images, device)
    return float((probs.argmax(dim=1) == labels.cpu()).double().mean())


def predict_probs(
    model: nn.Module,
    images_uint8: torch.Tensor,
    device: str | torch.device,
    batch_size: int = 1000,
) -> torch.Tensor:
    """(N, 10) float64 softmax probabilities, on the CPU, for uint8 images (N, 1, H, W).

    Images of another size are resized to 28x28 (antialiased bilinear, as the datasets are).
    Three-channel images are refused: score Stacked MNIST one channel at a time.
    """
    return predict(model, images_uint8, device, batch_size)[0]


def predict(
    model: nn.Module,
    images_uint8: torch.Tensor,
    device: str | torch.device,
    batch_size: int = 1000,
    features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(probabilities, penultimate features) of uint8 images (N, 1, H, W), on the CPU.

    The probabilities are as :func:`predict_probs`; with ``features`` the second item is the
    (N, 128) float64 output of the 128-unit layer before the last linear layer (after its
    ReLU, in eval mode: no dropout), what the in-domain FID compares; else ``None``.
    """
    if images_uint8.dim() != 4 or images_uint8.shape[1] != 1:
        raise ValueError(
            f"predict_probs needs single-channel images (N, 1, H, W), got "
            f"{tuple(images_uint8.shape)}; for Stacked MNIST classify each channel separately"
        )
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"predict_probs needs uint8 images, got {images_uint8.dtype}")
    dev = torch.device(device)
    was_training = model.training
    model.eval()  # batch-norm running statistics, no dropout
    out, feats = [], []
    try:
        with torch.inference_mode():
            for start in range(0, images_uint8.shape[0], batch_size):
                batch = images_uint8[start : start + batch_size]
                if batch.shape[-2:] != (SIZE, SIZE):
                    batch = resize_uint8(batch.cpu(), SIZE)
                x = to_float(batch.to(dev, non_blocking=True))
                if features:
                    h = penultimate(model, x)
                    logits = model.head[-1](h)
                    feats.append(h.double().cpu())
                else:
                    logits = model(x)
                out.append(torch.softmax(logits.double(), dim=1).cpu())
    finally:
        model.train(was_training)
    if not out:
        empty = torch.empty(0, NUM_CLASSES, dtype=torch.float64)
        return empty, (torch.empty(0, FEATURE_DIM, dtype=torch.float64) if features else None)
    return torch.cat(out), (torch.cat(feats) if features else None)


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The 128 features a :class:`DigitClassifier` computes before its last linear layer."""
    return model.head[:-1](model.features(x))


def classifier_scores(probs: torch.Tensor, splits: int = 10) -> dict[str, Any]:
    """Classifier score (the IS formula, mean and std over ``splits`` contiguous parts),
    argmax class histogram, classes covered (at least one sample) and KL(histogram ‖ uniform).
    """
    r = scores.inception_score(probs, splits)
    counts = scores.class_histogram(probs)
    return {
        "classifier_score": r.mean,
        "classifier_score_std": r.std,
        "histogram": [int(c) for c in counts],
        "classes_covered": scores.coverage(counts),
        "kl_to_uniform": scores.kl_to_uniform(counts),
        "num_samples": int(probs.shape[0]),
    }
