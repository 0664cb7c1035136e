"""``gantricks features``: D's convolutional features + a linear L2-SVM (DCGAN section 5.1)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gantricks.cli.common import check_counts
from gantricks.errors import GantricksError


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "features",
        help="classify with the discriminator's features and a linear SVM",
        description="DCGAN section 5.1: every convolutional block of D max-pooled to 4x4, "
        "flattened and concatenated; a linear L2-SVM (scikit-learn LinearSVC) trained on a "
        "labelled subset and scored on the test split. --baselines adds the same SVM on raw "
        "pixels and on an untrained D of the same shape.",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT")
    p.add_argument("--dataset", help="labelled dataset (default: the run's)")
    p.add_argument("--data-dir", help="dataset folder (default: the run's)")
    p.add_argument(
        "--labels-per-class",
        type=int,
        default=None,
        metavar="N",
        help="labelled training examples per class (default: every training image)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the labelled subset")
    p.add_argument(
        "--C",
        dest="cs",
        default=",".join(str(c) for c in (0.0001, 0.001, 0.01, 0.1, 1.0)),
        help="SVM regularisation constant(s); several: chosen by 3-fold cross-validation",
    )
    p.add_argument("--baselines", action="store_true", help="also raw pixels and an untrained D")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_features)


def _cs(text: str) -> tuple[float, ...]:
    try:
        cs = tuple(float(c) for c in text.split(",") if c.strip())
    except ValueError:
        cs = ()
    if not cs or any(c <= 0 for c in cs):
        raise GantricksError(f"--C {text!r}: give one or more positive numbers, e.g. 0.01,0.1,1")
    return cs


def cmd_features(args: argparse.Namespace) -> int:
    from gantricks.data import NATIVE_SIZE, NUM_CLASSES, balanced_subset, load_dataset, to_float
    from gantricks.features import conv_features, feature_blocks, linear_svm
    from gantricks.models import build_models
    from gantricks.run import load_models

    check_counts(args, "labels_per_class")
    cs = _cs(args.cs)
    models, config, ckpt = load_models(args.checkpoint, args.device)
    feature_blocks(models.discriminator)  # a clear error before any data is loaded
    dataset = args.dataset or config.dataset
    if dataset not in NUM_CLASSES:
        what = "has no class labels" if dataset in NATIVE_SIZE else "is not a dataset"
        raise GantricksError(
            f"gantricks features needs a labelled dataset; {dataset!r} {what}; "
            f"allowed: {', '.join(NUM_CLASSES)}"
        )
    data_dir = args.data_dir or config.data_dir
    size = ckpt["image_size"]
    train = load_dataset(dataset, data_dir, size, train=True, download=config.download)
    test = load_dataset(dataset, data_dir, size, train=False, download=config.download)
    if train.channels != ckpt["channels"]:
        raise GantricksError(
            f"{dataset!r} has {train.channels} channel(s) but the checkpoint's discriminator "
            f"takes {ckpt['channels']}"
        )
    assert train.labels is not None and test.labels is not None
    if args.labels_per_class is not None:
        idx = balanced_subset(train.labels, args.labels_per_class, NUM_CLASSES[dataset], args.seed)
    else:
        idx = torch.arange(len(train))
    x_train, y_train = train.images[idx], train.labels[idx]

    extractors: dict[str, Any] = {
        "discriminator": lambda images: conv_features(models.discriminator, images)
    }
    if args.baselines:
        torch.manual_seed(config.seed)
        fresh = build_models(config.nz, ckpt["channels"], size, config.ngf, config.ndf)
        fresh.discriminator.to(next(models.discriminator.parameters()).device)
        extractors["untrained discriminator"] = lambda images: conv_features(
            fresh.discriminator, images
        )
        extractors["pixels"] = lambda images: to_float(images).flatten(1)

    results: dict[str, Any] = {}
    print(
        f"{dataset}: {len(idx)} labelled training images"
        + (f" ({args.labels_per_class} per class)" if args.labels_per_class else "")
        + f", {len(test)} test images; checkpoint {ckpt['path']} (step {ckpt['step']})"
    )
    print(f"{'features':26s} {'dim':>7s} {'C':>8s} {'CV acc':>8s} {'test acc':>9s} {'time':>7s}")
    for name, extract in extractors.items():
        start = time.perf_counter()
        result = linear_svm(extract(x_train), y_train, extract(test.images), test.labels, cs)
        seconds = time.perf_counter() - start
        results[name] = {**asdict(result), "seconds": seconds}
        cv = f"{result.cv_accuracy:.4f}" if result.cv_accuracy is not None else "-"
        print(
            f"{name:26s} {result.feature_dim:7d} {result.C:8g} {cv:>8s} "
            f"{result.test_accuracy:9.4f} {seconds:6.1f}s"
        )
    if args.json:
        from gantricks.files import atomic_write_text

        atomic_write_text(
            Path(args.json),
            json.dumps(
                {
                    "checkpoint": str(ckpt["path"]),
                    "step": ckpt["step"],
                    "dataset": dataset,
                    "labels_per_class": args.labels_per_class,
                    "labelled_examples": len(idx),
                    "label_seed": args.seed,
                    "C_grid": list(cs),
                    "results": results,
                },
                indent=1,
            )
            + "\n",
        )
    return 0
