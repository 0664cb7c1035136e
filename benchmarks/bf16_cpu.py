"""Does bf16 pay on this CPU? gantricks' training step and one convolution, fp32 against bf16.

    python benchmarks/bf16_cpu.py --json benchmarks/results/bf16_cpu_<machine>.json

Both precisions are timed in one process, in interleaved rounds (so a change in the
machine's load hits both alike), after warm-up steps (bf16's first steps make their
kernels, which takes seconds): gantricks' own training step (``Trainer.train_step``, as
``benchmarks/throughput.py`` times it) at batch 128, 32×32, and the forward + backward of
one convolution of that discriminator (its second: 64 → 128 channels, 16×16 → 8×8), in NCHW
and channels_last. Also the figure gantricks' own pre-run probe gives
(:func:`gantricks.train.precision.probe_bf16`). The CPU's model and bf16 flags are
recorded: they do not predict the answer (a 2.0× gain on one AVX-512 BF16 machine, a 14×
loss on another that reports ``avx512_bf16`` and ``amx_bf16``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gantricks.run import prepare
from gantricks.train import precision

OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples", "no:eval"]


def cpu() -> dict[str, object]:
    info: dict[str, object] = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = {k.strip(): v.strip() for k, v in lines.items()}.get("flags", "").split()
    model = {k.strip(): v.strip() for k, v in lines.items()}.get("model name", "")
    info.update(model=model, bf16_flags=[f for f in flags if "bf16" in f or f == "amx_tile"])
    return info


def trainer_step(bf16: bool, batch: int, size: int, tmp: str) -> Callable[[], None]:
    opts = {"out_dir": tmp, "name": "bf16" if bf16 else "fp32", "device": "cpu"}
    opts |= {"steps": 10**9, "batch_size": batch, "image_size": size, "bf16_probe": False}
    opts["precision"] = "bf16" if bf16 else "fp32"
    trainer, _ = prepare(opts, plugins=OFF)
    trainer.hook.gantricks_train_start(trainer=trainer)
    return trainer.train_step


def conv_step(bf16: bool, channels_last: bool, batch: int) -> Callable[[], None]:
    conv = nn.Conv2d(64, 128, 4, 2, 1, bias=False)
    x = torch.randn(batch, 64, 16, 16)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().square().mean().backward()

    return step


def interleaved(steps: dict[str, Callable[[], None]], warmup: int, rounds: int, n: int):
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - start) / n * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="gantricks-bf16-")
    step = interleaved(
        {
            "fp32": trainer_step(False, args.batch_size, args.image_size, tmp),
            "bf16": trainer_step(True, args.batch_size, args.image_size, tmp),
        },
        warmup=3,
        rounds=args.rounds,
        n=5,
    )
    conv = interleaved(
        {
            f"{'bf16' if bf16 else 'fp32'} {'channels_last' if cl else 'NCHW'}": conv_step(
                bf16, cl, args.batch_size
            )
            for cl in (False, True)
            for bf16 in (False, True)
        },
        warmup=3,
        rounds=args.rounds,
        n=10,
    )
    probe_trainer, _ = prepare(
        {"out_dir": tmp, "name": "probe", "device": "cpu", "steps": 1, "bf16_probe": False,
         "batch_size": args.batch_size, "image_size": args.image_size},
        plugins=OFF,
    )  # fmt: skip
    start = time.perf_counter()
    probe = precision.probe_bf16(probe_trainer)
    probe_s = time.perf_counter() - start
    result = {
        "command": "python benchmarks/bf16_cpu.py " + " ".join(argv or sys.argv[1:]),
        "cpu": cpu(),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "train_step_ms": step,
        "train_step_img_per_s": {k: args.batch_size / v * 1e3 for k, v in step.items()},
        "bf16_speedup_train_step": step["fp32"] / step["bf16"],
        "conv_fwd_bwd_ms": conv,
        "probe_ms": {"fp32": probe[0], "bf16": probe[1], "batch": precision.PROBE_BATCH},
        "probe_seconds": probe_s,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
