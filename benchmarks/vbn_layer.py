"""Virtual batch norm's layer cost against torch's BatchNorm2d, forward + backward, CPU.

    OMP_NUM_THREADS=1 python benchmarks/vbn_layer.py [--compare OLD.py]

Each shape is (reference N + batch, channels, height, width). The times are medians of
interleaved rounds in one process, so the ratios hold on a busy machine; ``--compare``
times another file's ``VirtualBatchNorm2d`` (an earlier version, e.g. from
``git show REV:plugins/virtual_batchnorm.py``) in the same rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from typing import Any

import torch

from gantricks_plugins.virtual_batchnorm import VirtualBatchNorm2d

SHAPES = [(64 + 64, 128, 8, 8), (64 + 128, 256, 4, 4), (64 + 64, 64, 16, 16)]


def seconds(layer: torch.nn.Module, x: torch.Tensor, reps: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        layer(x).square().mean().backward()
    return (time.perf_counter() - start) / reps


def load_layer(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("vbn_compare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VirtualBatchNorm2d


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--compare", help="a file with another VirtualBatchNorm2d to time too")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    other = load_layer(args.compare) if args.compare else None
    for shape in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(*shape, requires_grad=True)
        layers = {
            "BatchNorm2d": torch.nn.BatchNorm2d(shape[1]),
            "vbn": VirtualBatchNorm2d(shape[1], 64),
        }
        if other is not None:
            layers["compared"] = other(shape[1], 64)
        times: dict[str, list[float]] = {k: [] for k in layers}
        for layer in layers.values():
            seconds(layer, x, 3)  # warm-up
        for _ in range(args.rounds):
            for name, layer in layers.items():
                times[name].append(seconds(layer, x))
        med = {k: statistics.median(v) for k, v in times.items()}
        line = (
            f"{shape}: BatchNorm2d {med['BatchNorm2d'] * 1e3:.2f} ms, vbn {med['vbn'] * 1e3:.2f} ms"
        )
        line += f" ({med['vbn'] / med['BatchNorm2d']:.2f}× BN)"
        if other is not None:
            ratio = med["compared"] / med["BatchNorm2d"]
            line += f", compared {med['compared'] * 1e3:.2f} ms ({ratio:.2f}× BN)"
            line += f"; vbn/compared {med['vbn'] / med['compared']:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
