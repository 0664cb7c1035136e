"""In-domain scores of real data: the ceiling a generator's classifier scores are read against.

    python benchmarks/real_data_scores.py --data-dir /work/shared/data \
        --json benchmarks/results/real_data_scores.json

For glyphs and MNIST: loads gantricks' classifier as an evaluation does (the shipped,
hash-checked ``glyphs-v2`` / ``mnist-v2``; see ``benchmarks/train_classifiers.py``), timing
it, then scores the real test split (10,000 images) with it: classifier score (IS formula,
10 contiguous splits), classes covered, KL of the class histogram to uniform. For Stacked
MNIST: 26,000 images built from MNIST's test split (seed 0, as
``load_stacked_mnist(train=False, n=26000)``), scored as a generator's samples would be
(VEEGAN/PacGAN protocol): modes covered of 1,000 and KL to uniform, next to the same
statistics from the true labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gantricks import stacked_mnist
from gantricks.data import load_dataset, load_stacked_mnist
from gantricks.metrics import scores
from gantricks.metrics.classifier import (
    classifier_scores,
    load_classifier,
    predict_probs,
    shipped_datasets,
)
from gantricks.metrics.modes import mode_coverage


def classifier_section(dataset: str, data_dir: str) -> tuple[Any, dict[str, Any]]:
    """Load ``dataset``'s classifier (training it only if gantricks ships none) and score
    its real test split."""
    start = time.perf_counter()
    model, info = load_classifier(dataset, data_dir, "cpu", download=False)
    load_seconds = time.perf_counter() - start
    test = load_dataset(dataset, data_dir, train=False, download=False)
    assert test.labels is not None
    start = time.perf_counter()
    probs = predict_probs(model, test.images, "cpu")
    predict_seconds = time.perf_counter() - start
    s = classifier_scores(probs, splits=10)
    accuracy = float((probs.argmax(1) == test.labels).double().mean())
    return model, {
        "classifier": info,
        "load_wall_seconds": round(load_seconds, 2),
        "test_images": len(test),
        "test_accuracy_recomputed": accuracy,
        "predict_seconds": round(predict_seconds, 2),
        **s,
    }


def stacked_section(mnist_model: Any, data_dir: str, n: int, seed: int) -> dict[str, Any]:
    """Modes covered by real Stacked MNIST images, as the classifier sees them and truly."""
    images, labels = load_stacked_mnist(data_dir, train=False, n=n, seed=seed, download=False)
    start = time.perf_counter()
    r = mode_coverage(mnist_model, images, "cpu")
    seconds = time.perf_counter() - start
    true_counts = torch.bincount(labels, minlength=stacked_mnist.NUM_MODES)
    predicted = torch.tensor(r["histogram"])
    return {
        "split": "test",
        "seed": seed,
        "num_samples": r["num_samples"],
        "modes_covered": r["modes_covered"],
        "kl_to_uniform": r["kl_to_uniform"],
        "true_label_modes_covered": scores.coverage(true_counts),
        "true_label_kl_to_uniform": scores.kl_to_uniform(true_counts),
        "min_max_count_classified": [int(predicted.min()), int(predicted.max())],
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw")
    p.add_argument("--stacked-samples", type=int, default=stacked_mnist.EVAL_SAMPLES)
    p.add_argument("--seed", type=int, default=0, help="Stacked MNIST generation seed")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    out: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": str(torch.__version__),
            "torch_threads": torch.get_num_threads(),
        },
        "shipped_classifiers": list(shipped_datasets()),
    }
    models = {}
    for dataset in ("glyphs", "mnist"):
        models[dataset], out[dataset] = classifier_section(dataset, args.data_dir)
        r = out[dataset]
        c = r["classifier"]
        print(
            f"{dataset}: classifier={c['name']} ({c['source']}) "
            f"load={r['load_wall_seconds']:.2f}s "
            f"test_acc={c['test_accuracy']:.4f} "
            f"score={r['classifier_score']:.3f}±{r['classifier_score_std']:.3f} "
            f"covered={r['classes_covered']} kl={r['kl_to_uniform']:.5f} "
            f"sha256={r['classifier']['sha256']}",
            flush=True,
        )
    s = stacked_section(models["mnist"], args.data_dir, args.stacked_samples, args.seed)
    out["stacked-mnist"] = s
    print(
        f"stacked-mnist: n={s['num_samples']} modes={s['modes_covered']}/1000 "
        f"kl={s['kl_to_uniform']:.4f} (true labels: modes={s['true_label_modes_covered']} "
        f"kl={s['true_label_kl_to_uniform']:.4f})",
        flush=True,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
