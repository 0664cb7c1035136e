"""Every metric gantricks computes, in one table: its name, what it needs, how it is
computed from the networks' outputs, its headline numbers and which way is better.

Evaluation (:class:`gantricks.metrics.evaluate.Evaluator`), the ``eval`` plugin (which
number picks ``best.pt``) and ``gantricks bench`` (which way a difference is better) all
read this table; nothing else lists the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from gantricks.metrics import scores

Outputs = dict[str, torch.Tensor]


class Evaluator(Protocol):
    """What a metric's computation reads from the evaluator
    (:class:`gantricks.metrics.evaluate.Evaluator`)."""

    settings: Any
    dataset: str

    def reference_statistics(self) -> dict[str, Any]: ...

    def classifier_reference_statistics(self) -> dict[str, Any]: ...


#: Every headline number a metric reports, and whether higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "is": True,
    "fid": False,
    "kid": False,
    "classifier_score": True,
    "classes_covered": True,
    "kl_to_uniform": False,
    "modes_covered": True,
    "classifier_fid": False,
}


@dataclass(frozen=True)
class Metric:
    """One metric: ``compute(outputs, evaluator)`` gives its entry in a result's
    ``metrics``; ``numbers(entry)`` its flat numbers (headlines and their spreads)."""

    name: str
    description: str
    network: Literal["inception", "classifier"]
    compute: Callable[[Outputs, Evaluator], dict[str, Any]]
    numbers: Callable[[dict[str, Any]], dict[str, float]]
    headline_number: Callable[[str], str]

    def headline(self, dataset: str) -> tuple[str, bool]:
        """(the number that stands for this metric on ``dataset``, higher is better)."""
        key = self.headline_number(dataset)
        return key, HIGHER_IS_BETTER[key]


def _inception_score(out: Outputs, ev: Evaluator) -> dict[str, Any]:
    r = scores.inception_score(out["logits"], ev.settings.splits, logits=True)
    return {"mean": r.mean, "std": r.std, "splits": r.splits}


def _fid(out: Outputs, ev: Evaluator) -> dict[str, Any]:
    ref = ev.reference_statistics()
    mu, sigma = scores.feature_statistics(out["pool"])
    return {
        "value": scores.frechet_distance(mu, sigma, ref["mu"], ref["sigma"]),
        "reference_images": ref["num_images"],
    }


def _kid(out: Outputs, ev: Evaluator) -> dict[str, Any]:
    ref, s, feats = ev.reference_statistics(), ev.settings, out["pool"]
    r = scores.kernel_inception_distance(
        feats, ref["kid_features"].double(), s.kid_subsets, s.kid_subset_size, s.seed
    )
    return {
        "mean": r.mean,
        "std": r.std,
        "subsets": s.kid_subsets,
        # as kernel_inception_distance takes it: no larger than either set
        "subset_size": min(s.kid_subset_size, feats.shape[0], ref["kid_features"].shape[0]),
    }


def _classifier(out: Outputs, ev: Evaluator) -> dict[str, Any]:
    if ev.dataset == "stacked-mnist":
        from gantricks.metrics.modes import mode_statistics

        return mode_statistics([out[f"probs{c}"] for c in range(3)])
    from gantricks.metrics.classifier import classifier_scores

    return classifier_scores(out["probs"], ev.settings.splits)


def _classifier_fid(out: Outputs, ev: Evaluator) -> dict[str, Any]:
    ref = ev.classifier_reference_statistics()
    feats = out["classifier_features"]
    mu, sigma = scores.feature_statistics(feats)
    info = getattr(ev, "classifier_info", {})
    return {
        "value": scores.frechet_distance(mu, sigma, ref["mu"], ref["sigma"]),
        "reference_images": ref["num_images"],
        "classifier": info.get("name"),
        "classifier_sha256": info.get("sha256"),
        "feature_dim": int(feats.shape[1]),
        "num_samples": int(feats.shape[0]),
    }


def _classifier_numbers(entry: dict[str, Any]) -> dict[str, float]:
    keys = ("classifier_score", "classes_covered", "kl_to_uniform", "modes_covered")
    return {k: float(entry[k]) for k in keys if k in entry}


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "is",
            "Inception Score (Salimans et al. 2016 protocol)",
            "inception",
            _inception_score,
            lambda e: {"is": e["mean"], "is_std": e["std"]},
            lambda dataset: "is",
        ),
        Metric(
            "fid",
            "Fréchet Inception Distance against the training set",
            "inception",
            _fid,
            lambda e: {"fid": e["value"]},
            lambda dataset: "fid",
        ),
        Metric(
            "kid",
            "Kernel Inception Distance against the training set",
            "inception",
            _kid,
            lambda e: {"kid": e["mean"]},
            lambda dataset: "kid",
        ),
        Metric(
            "classifier",
            "in-domain classifier score, classes (or Stacked MNIST modes) covered, KL to uniform",
            "classifier",
            _classifier,
            _classifier_numbers,
            lambda dataset: "modes_covered" if dataset == "stacked-mnist" else "classifier_score",
        ),
        Metric(
            "classifier_fid",
            "in-domain FID: Fréchet distance of the in-domain classifier's 128-d penultimate "
            "features, samples vs the training set (not the Inception FID; not for "
            "stacked-mnist); lower is better",
            "classifier",
            _classifier_fid,
            lambda e: {"classifier_fid": e["value"]},
            lambda dataset: "classifier_fid",
        ),
    )
}


def numbers(result: dict[str, Any]) -> dict[str, float]:
    """Every flat number of an evaluation result (``is``, ``is_std``, ``fid``, ...)."""
    out: dict[str, float] = {}
    for name, entry in result["metrics"].items():
        out.update(METRICS[name].numbers(entry))
    return out


def headline_numbers(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a result that have a direction (what a comparison ranks)."""
    return {k: v for k, v in numbers(result).items() if k in HIGHER_IS_BETTER}
