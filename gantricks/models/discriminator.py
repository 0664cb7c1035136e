"""The discriminator every model provides, and the places plugins change it.

``D(x) -> (logit, features)``, in three parts:

1. ``features``: the trunk, images -> a flat vector ``(N, feature_dim)``: what feature
   matching matches and minibatch discrimination reads;
2. ``transforms``: an ordered list of feature transforms a plugin appends with
   :meth:`GanDiscriminator.add_transform` (minibatch discrimination appends
   f -> cat(f, o(f))); each widens the vector by its ``extra_dim``;
3. ``head``: the vector -> one real-vs-generated logit, or ``K`` class logits once a plugin
   calls :meth:`GanDiscriminator.set_classes` (the K+1 discriminator of Salimans et al.,
   whose generated class has its logit fixed at 0: the returned logit is then
   logsumexp of the K logits, so D(x) = Z/(Z+1) with Z = Σ_k exp l_k).

The head is rebuilt (freshly initialised, as the model makes heads) whenever the
transforms or the number of classes change; plugins do both in
``gantricks_build_models``, before any weight is trained or initialised from data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def gan_logit(class_logits: torch.Tensor) -> torch.Tensor:
    """The real-vs-fake logit of a K+1 classifier whose fake-class logit is fixed at 0.

    D(x) = Z/(Z+1) with Z = Σ_k exp l_k, so D(x) = sigmoid(log Z) and the logit is
    logsumexp(l): binary cross-entropy on it is −log D(x) (target 1) or −log(1 − D(x))
    (target 0), computed stably as softplus(∓ logsumexp(l)).
    """
    return torch.logsumexp(class_logits.float(), dim=1, keepdim=True)


class GanDiscriminator(nn.Module):
    """images -> ``(logit (N, 1), features (N, feature_dim))`` (:class:`DiscriminatorLike`).

    :param features: the trunk (images -> flat features).
    :param feature_dim: the trunk's output width.
    :param make_head: ``(in_features, out_features) -> module``, the model's kind of head.
    :param blocks: the modules that end each block of the trunk, first first (feature
        matching's ``layer`` option and ``gantricks features`` read their outputs).
    :param head: the first head (default: ``make_head(feature_dim, 1)``).
    """

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        make_head: Callable[[int, int], nn.Module],
        blocks: list[nn.Module] | None = None,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.transforms = nn.ModuleList()
        self._make_head = make_head
        for m in blocks or []:
            m.ends_block = True  # found again after wrapping or copying (see blocks())
        self.num_classes: int | None = None
        self.head: nn.Module = head if head is not None else make_head(feature_dim, 1)

    # ---------------------------------------------------------------- for plugins
    @property
    def head_in(self) -> int:
        """The head's input width: ``feature_dim`` plus every transform's ``extra_dim``."""
        return self.feature_dim + sum(int(t.extra_dim) for t in self.transforms)

    def add_transform(self, transform: nn.Module) -> None:
        """Append a feature transform (a module with an ``extra_dim`` attribute that maps
        ``(N, A)`` to ``(N, A + extra_dim)``) and rebuild the head for the new width."""
        if not hasattr(transform, "extra_dim"):
            raise TypeError(f"{type(transform).__name__} has no extra_dim")
        self.transforms.append(transform)
        self.head = self._make_head(self.head_in, self.num_classes or 1)

    def set_classes(self, k: int) -> None:
        """Make the head a K-class classifier (the K+1 discriminator)."""
        self.num_classes = k
        self.head = self._make_head(self.head_in, k)

    def blocks(self) -> list[nn.Module]:
        """The modules ending each block of the trunk, first first."""
        return [m for m in self.features.modules() if getattr(m, "ends_block", False)]

    # ------------------------------------------------------------------ forward
    def head_outputs(self, h: torch.Tensor) -> torch.Tensor:
        """Transforms then head: ``(N, 1)``, or ``(N, K)`` class logits."""
        for transform in self.transforms:
            h = transform(h)
        return self.head(h)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The K class logits of a K+1 discriminator."""
        if self.num_classes is None:
            raise RuntimeError("this discriminator has no classes (set_classes was not called)")
        return self.head_outputs(self.features(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        out = self.head_outputs(h)
        if self.num_classes is not None:
            out = gan_logit(out)
        return out, h
