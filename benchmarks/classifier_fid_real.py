"""The in-domain FID (``classifier_fid``) of real images: the floor a generator's value is
read against.

    python benchmarks/classifier_fid_real.py --data-dir ../shared/data --dataset mnist \
        --json benchmarks/results/classifier_fid_real.json

Scores the first N images of the dataset's test split (N = 5,000 and 10,000, as a bench
scores 5,000 or 10,000 samples) exactly as ``gantricks eval --metrics classifier_fid`` scores
samples: the shipped classifier's 128-d penultimate features against the cached statistics
of the first 50,000 training images (the same reference file an evaluation uses).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gantricks.data import load_dataset
from gantricks.metrics import registry
from gantricks.metrics.digit_classifier import predict
from gantricks.metrics.evaluate import EvalSettings, Evaluator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "glyphs", "fashion-mnist"))
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    p.add_argument("--json")
    args = p.parse_args()
    ev = Evaluator(
        EvalSettings(metrics=["classifier_fid"], progress=False),
        args.dataset,
        args.data_dir,
        28,
        "cpu",
        download=False,
    )
    test = load_dataset(args.dataset, args.data_dir, 28, train=False, download=False)
    rows = []
    for n in args.sizes:
        _, feats = predict(ev.classifier, test.images[:n], "cpu", features=True)
        entry = registry.METRICS["classifier_fid"].compute({"classifier_features": feats}, ev)
        rows.append({"test_images": n, **entry})
        print(f"{args.dataset} test[:{n}] classifier_fid {entry['value']:.3f}", flush=True)
    out = {
        "dataset": args.dataset,
        "classifier": ev.classifier_info,
        "reference": {k: ev.classifier_reference[k] for k in ("num_images", "path")},
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
