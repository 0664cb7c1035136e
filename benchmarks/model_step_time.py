"""Step time of each model, and what minibatch discrimination adds to it, in one process.

    python benchmarks/model_step_time.py --device cpu --batch-size 100 --image-size 32 \
        --json benchmarks/results/model_step_time_cpu.json

Times gantricks' training step (one D and one G update, glyphs images at the given size)
for every registered model, alone and with the ``minibatch`` plugin at its defaults
(B × C = 5 × 3 on ``dcgan``, the paper's 100 × 5 on the authors' models). Configurations
are timed in interleaved rounds, so drift in machine load hits all alike; the median round
is reported, with each model's time relative to DCGAN's and minibatch's overhead relative
to the same model without it. The ratios are the median over rounds of each round's ratio
(the two configurations of a pair run back to back in a round), which a machine shared
with other work disturbs less than a ratio of medians.
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

from gantricks.models import MODELS
from gantricks.run import prepare

OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples", "no:eval"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="gantricks-models-")
    loops = {}
    for model in args.models:
        for plugins in ([], ["minibatch"]):
            name = f"{model}{' + minibatch' if plugins else ''}"
            opts = {
                "out_dir": tmp, "name": name.replace(" ", ""), "device": args.device,
                "steps": 10**9, "batch_size": args.batch_size, "image_size": args.image_size,
                "model": model,
            }  # fmt: skip
            trainer, _ = prepare(opts, plugins=[*OFF, *plugins])
            trainer.hook.gantricks_train_start(trainer=trainer)
            loops[name] = trainer

    def run(trainer, steps: int) -> None:
        for _ in range(steps):
            trainer.train_step()
            trainer.step += 1
            if trainer.step % trainer.config.log_every == 0:
                trainer.log()

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {n: [] for n in loops}
    for trainer in loops.values():
        run(trainer, args.warmup)
    for _ in range(args.rounds):
        for name, trainer in loops.items():
            sync()
            start = time.perf_counter()
            run(trainer, args.steps)
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {n: statistics.median(t) for n, t in times.items()}

    def paired(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    base = "dcgan" if "dcgan" in times else None
    rows = []
    print(f"{'configuration':34s} {'ms/step':>9s} {'× dcgan':>8s} {'× without minibatch':>20s}")
    for name, t in median.items():
        model = name.split(" + ")[0]
        row = {
            "config": name,
            "ms_per_step": t * 1e3,
            "vs_dcgan": paired(name, base) if base else None,
            "minibatch_overhead": paired(name, model) if name != model else None,
            "rounds_ms": [x * 1e3 for x in times[name]],
        }
        rows.append(row)
        over = f"{row['minibatch_overhead']:.2f}" if row["minibatch_overhead"] else ""
        print(f"{name:34s} {t * 1e3:9.1f} {row['vs_dcgan'] or 0:8.2f} {over:>20s}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/model_step_time.py "
                    + " ".join(argv or sys.argv[1:]),
                    "device": args.device,
                    "cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "batch_size": args.batch_size,
                    "image_size": args.image_size,
                    "steps": args.steps,
                    "rounds": args.rounds,
                    "results": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
