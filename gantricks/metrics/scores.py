"""The score formulas, on plain tensors: no networks, no I/O.

``inception_score`` is the formula of Salimans et al. (2016) as their released code
computes it: the samples are cut into ``splits`` contiguous, equal parts (no shuffling);
per part, exp(mean_x KL(p(y|x) ‖ p(y))) with p(y) the part's mean prediction; the result
is the mean and the (population) standard deviation over parts. The same formula with an
in-domain classifier instead of Inception gives the "classifier score".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SplitScore:
    """mean ± std over splits, and each split's value."""

    mean: float
    std: float
    splits: list[float]


def inception_score(
    probs_or_logits: torch.Tensor, splits: int = 10, logits: bool = False
) -> SplitScore:
    """IS over ``splits`` contiguous parts of (N, K) class probabilities (or logits).

    Computed in float64. Identical predictions give 1; confident, uniformly spread
    predictions over K classes give K.
    """
    x = probs_or_logits.double()
    n = x.shape[0]
    if x.dim() != 2 or n < splits:
        raise ValueError(f"need (N, K) predictions with N >= splits={splits}, got {tuple(x.shape)}")
    log_p = torch.log_softmax(x, dim=1) if logits else torch.log(x.clamp_min(1e-30))
    p = log_p.exp()
    scores = []
    for k in range(splits):
        part = slice(k * n // splits, (k + 1) * n // splits)
        p_k, log_p_k = p[part], log_p[part]
        log_py = torch.log(p_k.mean(dim=0, keepdim=True).clamp_min(1e-30))
        kl = (p_k * (log_p_k - log_py)).sum(dim=1).mean()
        scores.append(math.exp(kl.item()))
    t = torch.tensor(scores, dtype=torch.float64)
    return SplitScore(float(t.mean()), float(t.std(unbiased=False)), scores)


def class_histogram(probs: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """How many samples the classifier assigns to each class (argmax), as int64 counts."""
    k = num_classes or probs.shape[1]
    return torch.bincount(probs.argmax(dim=1), minlength=k)


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(histogram ‖ uniform) in nats; 0 when every class is equally frequent."""
    p = counts.double() / counts.sum()
    k = counts.numel()
    nz = p > 0
    return float((p[nz] * (p[nz] * k).log()).sum())


def coverage(counts: torch.Tensor, min_count: int = 1) -> int:
    """Number of classes (modes) with at least ``min_count`` samples."""
    return int((counts >= min_count).sum())


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """FID between two Gaussians, computed by torch-fidelity's routine (float64)."""
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    stats = [
        {"mu": m.double().cpu().numpy(), "sigma": s.double().cpu().numpy()}
        for m, s in ((mu1, sigma1), (mu2, sigma2))
    ]
    return float(
        fid_statistics_to_metric(stats[0], stats[1], verbose=False)["frechet_inception_distance"]
    )


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    f = features.double()
    return f.mean(dim=0), torch.cov(f.T)


def kernel_inception_distance(
    f1: torch.Tensor, f2: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> SplitScore:
    """KID (unbiased MMD², cubic polynomial kernel) over random subsets, by torch-fidelity."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset_size, f1.shape[0], f2.shape[0])
    out = kid_features_to_metric(
        f1.double().cpu(),
        f2.double().cpu(),
        kid_subsets=subsets,
        kid_subset_size=size,
        rng_seed=seed,
        verbose=False,  # torch-fidelity's defaults: poly kernel, degree 3, coef0 1
    )
    return SplitScore(
        out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"], []
    )
