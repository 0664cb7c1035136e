"""The discriminator as a feature extractor (DCGAN paper, section 5.1).

Every convolutional block of D is max-pooled to a 4×4 grid, flattened and concatenated;
a regularised linear L2-SVM (scikit-learn's ``LinearSVC``: squared hinge loss, L2
penalty) is trained on those features of a labelled subset and tested on the test split.
The paper's CIFAR-10 figure (82.8%) used a D trained on ImageNet-1k and all 50,000
CIFAR-10 training labels; the same protocol here is ``gantricks features CKPT --dataset
cifar10 --labels-per-class 5000``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gantricks.data import to_float
from gantricks.errors import GantricksError
from gantricks.models import conv_blocks
from gantricks.sampling import feature_mode

#: Default grid of SVM regularisation constants; the best by cross-validation is kept.
C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0)


def feature_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """:func:`gantricks.models.conv_blocks`, or a clear error where D has none."""
    blocks = conv_blocks(discriminator)
    if not blocks:
        raise GantricksError(
            "gantricks features needs a DCGAN discriminator (convolutional blocks ending in "
            "LeakyReLU); this checkpoint's discriminator has none (e.g. the semi-supervised "
            "MLP model)"
        )
    return blocks


@torch.no_grad()
def conv_features(
    discriminator: nn.Module, images_uint8: torch.Tensor, grid: int = 4, batch_size: int = 500
) -> torch.Tensor:
    """(N, Σ_blocks channels·grid²) features: each block's activations max-pooled to a
    ``grid``×``grid`` map (smaller maps are kept as they are), flattened, concatenated.

    D runs batch by batch with batch statistics, as it sees real batches in training, with
    any noise or dropout off; D is left unchanged.
    """
    device = next(discriminator.parameters()).device
    captured: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _a, out: captured.append(out))
        for m in feature_blocks(discriminator)
    ]
    out = []
    try:
        with feature_mode(discriminator):
            for chunk in images_uint8.split(batch_size):
                captured.clear()
                discriminator(to_float(chunk.to(device)))
                pooled = [
                    F.adaptive_max_pool2d(h, min(grid, h.shape[-1])).flatten(1) for h in captured
                ]
                out.append(torch.cat(pooled, 1).float().cpu())
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(out)


@dataclass
class SVMResult:
    """Test accuracy of a linear L2-SVM, and how it was chosen."""

    test_accuracy: float
    C: float
    cv_accuracy: float | None
    train_examples: int
    test_examples: int
    feature_dim: int
    cv_scores: dict[float, float] = field(default_factory=dict)


def linear_svm(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    cs: tuple[float, ...] = C_GRID,
    seed: int = 0,
) -> SVMResult:
    """Standardise the features, pick C by stratified 3-fold cross-validation on the
    training set (when more than one C is given), fit, and score the test set."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x, y = train_x.numpy().astype(np.float64), train_y.numpy()
    svm = LinearSVC(loss="squared_hinge", dual="auto", max_iter=10_000)  # L2-SVM
    model = make_pipeline(StandardScaler(), svm)
    cv_scores: dict[float, float] = {}
    cv_accuracy = None
    if len(cs) > 1:
        folds = min(3, int(np.bincount(y).min()))
        if folds < 2:
            raise GantricksError(
                "choosing C by cross-validation needs at least 2 labelled examples per class; "
                "give one value with --C, or more labels"
            )
        search = GridSearchCV(
            model,
            {"linearsvc__C": list(cs)},
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        search.fit(x, y)
        best_c = float(search.best_params_["linearsvc__C"])
        cv_accuracy = float(search.best_score_)
        cv_scores = {
            float(c): float(s)
            for c, s in zip(cs, search.cv_results_["mean_test_score"], strict=True)
        }
    else:
        best_c = float(cs[0])
    model.set_params(linearsvc__C=best_c)
    model.fit(x, y)
    accuracy = float((model.predict(test_x.numpy().astype(np.float64)) == test_y.numpy()).mean())
    return SVMResult(
        test_accuracy=accuracy,
        C=best_c,
        cv_accuracy=cv_accuracy,
        train_examples=len(y),
        test_examples=len(test_y),
        feature_dim=x.shape[1],
        cv_scores=cv_scores,
    )
