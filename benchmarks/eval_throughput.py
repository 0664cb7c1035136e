"""Samples per second of Inception Score evaluation (generator + Inception), end to end.

    python benchmarks/eval_throughput.py --device cpu --num-samples 500
    python benchmarks/eval_throughput.py --device cuda --num-samples 50000 \
        --inception-weights pt_inception-2015-12-05-6726825d.pth

Without ``--inception-weights`` the real architecture runs with random weights (the same
compute, a meaningless score), so the speed can be measured offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from gantricks.metrics.evaluate import EvalSettings, Evaluator
from gantricks.metrics.inception import save_random_weights
from gantricks.models import build_models


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--inception-weights", help="real weights; default: random weights")
    args = p.parse_args(argv)
    weights = args.inception_weights or str(
        save_random_weights(Path(tempfile.mkdtemp()) / "random-inception.pth")
    )
    settings = EvalSettings(
        metrics=["is"],
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        inception_weights=weights,
        progress=False,
    )
    evaluator = Evaluator(settings, "cifar10", tempfile.mkdtemp(), args.image_size, args.device)
    torch.manual_seed(0)
    models = build_models(100, 3, args.image_size, 64, 64).to(args.device)
    result = evaluator.evaluate(models.generator, 100)
    assert result is not None
    kind = "real" if args.inception_weights else "random"
    print(
        f"IS of {args.num_samples} samples ({kind} Inception weights, {args.device}, "
        f"{args.image_size}px DCGAN): {result['samples_per_s']:.1f} samples/s, "
        f"{result['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
