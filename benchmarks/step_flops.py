"""Floating-point operations of one training step, counted by torch, for wall-time estimates.

    python benchmarks/step_flops.py --model dcgan --batch-size 512 --image-size 64
    python benchmarks/step_flops.py --model improved-gan --batch-size 100 --image-size 32 \
        --plugins minibatch,labels,label_smooth,virtual_batchnorm \
        --set g_steps=3 generator_loss=minimax

Counts the FLOPs of one ``train_step`` (every D and G update of the step, forward and
backward) with ``torch.utils.flop_counter.FlopCounterMode``, on the CPU, with glyphs images.
The data do not change the count, only the shapes do; one channel where CIFAR-10 has three
changes only D's first and G's last layer, under 1 % of an ``improved-gan`` step. A
measured throughput of one configuration on a device, divided into its FLOPs per step,
gives the FLOP/s the device reached on that kind of network; that rate applied to another
configuration's count is an estimate of its step time, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gantricks.config import parse_sets
from gantricks.run import prepare

OFF = ["no:progress", "no:tensorboard", "no:checkpoint", "no:samples", "no:eval"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="dcgan")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--plugins", default="", help="comma-separated trick plugins")
    p.add_argument("--set", nargs="*", default=[], dest="sets", metavar="KEY=VALUE")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    opts = {
        "out_dir": tempfile.mkdtemp(prefix="gantricks-flops-"), "device": "cpu",
        "steps": 10**9, "batch_size": args.batch_size, "image_size": args.image_size,
        "model": args.model, **parse_sets(args.sets),
    }  # fmt: skip
    plugins = [*OFF, *(x for x in args.plugins.split(",") if x)]
    trainer, _ = prepare(opts, plugins=plugins)
    trainer.hook.gantricks_train_start(trainer=trainer)
    trainer.train_step()  # the first step may initialise state (data init, references)
    trainer.step += 1
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    flops = counter.get_total_flops()
    row = {
        "model": args.model,
        "plugins": plugins[len(OFF) :],
        "sets": args.sets,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "gflop_per_step": flops / 1e9,
        "mflop_per_image": flops / 1e6 / args.batch_size,
        "torch": torch.__version__,
    }
    print(json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
