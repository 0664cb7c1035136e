"""Step time of each trick plugin relative to no plugins, measured in one process.

    python benchmarks/plugin_cost.py --device cpu --batch-size 128 --image-size 32 \
        --json benchmarks/results/plugin_cost_cpu.json

Every configuration trains the same DCGAN on the same data; configurations are timed in
interleaved rounds (so drift in machine load hits all of them alike) and the median round
is reported. Infrastructure plugins are off: this measures the tricks alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gantricks.run import prepare

CONFIGS: dict[str, list[str]] = {
    "none": [],
    "feature_matching": ["feature_matching"],
    "minibatch": ["minibatch"],
    "historical_averaging": ["historical_averaging"],
    "label_smooth": ["label_smooth"],
    "virtual_batchnorm": ["virtual_batchnorm"],
    "all": ["feature_matching", "minibatch", "historical_averaging", "label_smooth",
            "virtual_batchnorm"],
}
OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    p.add_argument("--json", type=Path, help="write results here")
    args = p.parse_args(argv)

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    tmp = tempfile.mkdtemp(prefix="gantricks-bench-")
    trainers = {}
    for name in names:
        opts = {"out_dir": tmp, "name": name, "device": args.device, "steps": 10**9,
                "batch_size": args.batch_size, "image_size": args.image_size}
        trainer, _ = prepare(opts, plugins=[*OFF, *CONFIGS[name]])
        trainer.hook.gantricks_train_start(trainer=trainer)
        for _ in range(args.warmup):
            trainer.train_step()
        sync(trainer.device)
        trainers[name] = trainer

    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            sync(trainer.device)
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            sync(trainer.device)
            times[name].append((time.perf_counter() - start) / args.steps)

    base = statistics.median(times[names[0]])
    rows = []
    print(f"{'configuration':22s} {'ms/step':>9s} {'img/s':>8s} {'× none':>7s}")
    for name in names:
        t = statistics.median(times[name])
        rows.append({"config": name, "ms_per_step": t * 1e3,
                     "img_per_s": args.batch_size / t, "ratio": t / base})
        print(f"{name:22s} {t * 1e3:9.1f} {args.batch_size / t:8.0f} {t / base:7.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device == "cuda"
            else platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "batch_size": args.batch_size, "image_size": args.image_size,
            "steps": args.steps, "rounds": args.rounds, "results": rows,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
