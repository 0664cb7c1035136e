"""gantricks' trainer against a plain pytorch/examples-style DCGAN loop, in one process.

    python benchmarks/throughput.py --device cpu --batch-size 128 --image-size 32 \
        --json benchmarks/results/throughput_cpu_b128_s32.json [--tricks]

The reference loop is written as pytorch/examples' dcgan/main.py writes it: a DataLoader
feeding CPU batches that are copied to the device each step, a sigmoid + BCELoss, labels
made with ``torch.full`` each step, three ``.item()`` reads per step, non-fused Adam. Both
loops train the same DCGAN (gantricks.models, same widths and initialisation) on the same
images, at the same batch and image size, on the same device. Loops are timed in interleaved
rounds (so drift in machine load hits all alike) and the median round is reported.
``--tricks`` also times gantricks with each Improved-GAN trick, and all five together.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from gantricks.data import load_dataset, to_float
from gantricks.models import build_models
from gantricks.run import prepare

FIVE = [
    "feature_matching",
    "minibatch",
    "historical_averaging",
    "label_smooth",
    "virtual_batchnorm",
]
TRICKS: dict[str, list[str]] = {t: [t] for t in FIVE} | {"all five": FIVE}
OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples", "no:eval"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loop(
    images: torch.Tensor, args: argparse.Namespace, device: torch.device
) -> Callable[[int], None]:
    """pytorch/examples dcgan/main.py's inner loop, on gantricks' architecture."""
    torch.manual_seed(0)
    m = build_models(100, images.shape[1], args.image_size, 64, 64).to(device)
    netG, netD = m.generator, m.discriminator
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    dataset = torch.utils.data.TensorDataset(to_float(images))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True
    )

    def batches() -> Iterator[torch.Tensor]:
        while True:
            for (x,) in loader:
                yield x

    it = batches()

    def run(steps: int) -> None:
        for _ in range(steps):
            real_cpu = next(it)
            real = real_cpu.to(device)
            b = real.size(0)
            netD.zero_grad()
            label = torch.full((b,), 1.0, dtype=real.dtype, device=device)
            output = torch.sigmoid(netD(real)[0]).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            output.mean().item()
            noise = torch.randn(b, 100, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            output = torch.sigmoid(netD(fake.detach())[0]).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            output.mean().item()
            optD.step()
            netG.zero_grad()
            label.fill_(1.0)
            output = torch.sigmoid(netD(fake)[0]).view(-1)
            errG = criterion(output, label)
            errG.backward()
            output.mean().item()
            optG.step()

    return run


def gantricks_loop(
    plugins: list[str], args: argparse.Namespace, tmp: str, name: str, graph: bool | None = None
) -> Callable[[int], None]:
    opts = {
        "out_dir": tmp,
        "name": name,
        "device": args.device,
        "steps": 10**9,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "cuda_graph": args.cuda_graph if graph is None else graph,
    }
    trainer, _ = prepare(opts, plugins=[*OFF, *plugins])
    trainer.hook.gantricks_train_start(trainer=trainer)

    def run(steps: int) -> None:
        for _ in range(steps):
            trainer.train_step()  # compiled (falling back to eager) or graphed, as in fit()
            trainer.step += 1
            if trainer.step % trainer.config.log_every == 0:
                trainer.log()  # the loop's one host sync, as in fit()

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="reference DataLoader workers (default: 0 on CPU, 2 on CUDA)",
    )
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="gantricks replays its step from a CUDA graph (plus one row without it)",
    )
    p.add_argument("--tricks", action="store_true", help="also time each trick plugin")
    p.add_argument("--images", type=int, default=10_000, help="dataset size for both loops")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.workers is None:
        args.workers = 2 if device.type == "cuda" else 0

    images = load_dataset("glyphs", image_size=args.image_size).images[: args.images]
    tmp = tempfile.mkdtemp(prefix="gantricks-throughput-")
    loops = {
        "reference": reference_loop(images, args, device),
        "gantricks": gantricks_loop([], args, tmp, "plain"),
    }
    if args.cuda_graph:  # the same trainer without the graph, for the graph's own gain
        loops["gantricks, no CUDA graph"] = gantricks_loop([], args, tmp, "eager", graph=False)
    if args.tricks:
        for name, plugins in TRICKS.items():
            loops[f"gantricks + {name}"] = gantricks_loop(plugins, args, tmp, name)

    times: dict[str, list[float]] = {n: [] for n in loops}
    peak_gpu: dict[str, int] = {}
    for run in loops.values():
        run(args.warmup)
        sync(device)
    for _ in range(args.rounds):
        for name, run in loops.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            start = time.perf_counter()
            run(args.steps)
            sync(device)
            times[name].append((time.perf_counter() - start) / args.steps)
            if device.type == "cuda":
                peak_gpu[name] = max(peak_gpu.get(name, 0), torch.cuda.max_memory_allocated(device))

    ref = statistics.median(times["reference"])
    rows = []
    print(f"{'loop':32s} {'img/s':>8s} {'× reference':>12s} {'peak GPU MB':>12s}")
    for name in loops:
        t = statistics.median(times[name])
        row = {
            "config": name,
            "img_per_s": args.batch_size / t,
            "reference_img_per_s": args.batch_size / ref,
            "ratio": ref / t,
            "ms_per_step": t * 1e3,
            "peak_gpu_mb": peak_gpu.get(name, 0) / 2**20,
        }
        rows.append(row)
        print(f"{name:32s} {row['img_per_s']:8.0f} {row['ratio']:12.2f} {row['peak_gpu_mb']:12.0f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole benchmark process: {rss_mb:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/throughput.py " + " ".join(argv or sys.argv[1:]),
                    "device": args.device,
                    "device_name": torch.cuda.get_device_name(device)
                    if device.type == "cuda"
                    else (platform.processor() or platform.machine()),
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "batch_size": args.batch_size,
                    "image_size": args.image_size,
                    "precision": args.precision,
                    "channels_last": args.channels_last,
                    "compile": args.compile,
                    "cuda_graph": args.cuda_graph,
                    "reference_workers": args.workers,
                    "steps": args.steps,
                    "rounds": args.rounds,
                    "peak_rss_mb": rss_mb,
                    "results": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
