"""How much of feature matching's loss is per-channel means, with D's batch norm applied
per batch (``feature_matching.normalisation=separate``) or with the real batch's statistics
for both batches (``normalisation=real``, the default).

    python benchmarks/fm_batchnorm.py --dataset mnist --data-dir ../shared/data \
        [--steps 0 200] [--seeds 0 1 2] [--json benchmarks/results/fm_batchnorm.json]

DCGAN's discriminator (batch norm in every block but the first) sees a real batch and a
generated batch. Feature matching's squared L2 loss over the trunk's flattened last map
(C×H×W features) is split into the per-channel-mean part, Σ_c HW·(mean_hw Δ_chw)², and the
rest (the spatial pattern within each channel). Measured at initialisation and after plain
DCGAN training for the given steps (the models of one run, both normalisations on the same
weights and batches), for each seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from gantricks.run import prepare
from gantricks.sampling import batch_norm_from_first

OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples", "no:eval"]


def mean_share(real: torch.Tensor, fake: torch.Tensor, channels: int) -> tuple[float, float]:
    """(the FM loss, the per-channel-mean part's share of it) for flattened C×H×W maps."""
    diff = real.mean(0) - fake.mean(0)  # (C·H·W,)
    per_position = diff.view(channels, -1)
    total = per_position.square().sum()
    means = per_position.mean(1).square().sum() * per_position.shape[1]
    return float(total), float(means / total)


@torch.no_grad()
def measure(trainer, batch: int) -> dict[str, dict[str, float]]:
    d, g = trainer.discriminator, trainer.generator
    real = trainer.sampler.next()[:batch]
    fake = g(trainer.sample_z(batch))
    channels = [m for m in d.features.modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
    out = {}
    # separate: each batch through D on its own (training mode, batch statistics)
    _, f_real = d(real)
    _, f_fake = d(fake)
    loss, share = mean_share(f_real, f_fake, channels)
    out["separate"] = {"loss": loss, "mean_share": share}
    with batch_norm_from_first(d.features, batch):
        h = d.features(torch.cat([real, fake]))
    loss, share = mean_share(h[:batch], h[batch:], channels)
    out["real"] = {"loss": loss, "mean_share": share}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="glyphs")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, nargs="+", default=[0, 200])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="gantricks-fm-")
    rows = []
    for seed in args.seeds:
        opts = {
            "dataset": args.dataset, "data_dir": args.data_dir, "download": False,
            "batch_size": args.batch_size, "steps": max(args.steps) or 1, "seed": seed,
            "device": "cpu", "out_dir": tmp, "name": f"seed{seed}",
        }  # fmt: skip
        trainer, _ = prepare(opts, plugins=OFF)
        trainer.hook.gantricks_train_start(trainer=trainer)
        for step in sorted(args.steps):
            while trainer.step < step:
                trainer.train_step()
                trainer.step += 1
            for mode, r in measure(trainer, args.batch_size).items():
                rows.append({"seed": seed, "step": step, "normalisation": mode, **r})
                print(
                    f"seed {seed} step {step:5d} {mode:9s} FM loss {r['loss']:10.4f}  "
                    f"per-channel-mean share {100 * r['mean_share']:5.1f} %",
                    flush=True,
                )
    print("\nmean ± sample std over seeds of the per-channel-mean share:")
    for step in sorted(args.steps):
        for mode in ("separate", "real"):
            v = [
                100 * r["mean_share"]
                for r in rows
                if r["step"] == step and r["normalisation"] == mode
            ]
            sd = statistics.stdev(v) if len(v) > 1 else float("nan")
            print(
                f"  step {step:5d} {mode:9s} {statistics.fmean(v):5.1f} ± {sd:4.1f} %  (n={len(v)})"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python benchmarks/fm_batchnorm.py " + " ".join(argv or sys.argv[1:])
        args.json.write_text(json.dumps({"command": cmd, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
