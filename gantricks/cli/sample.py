"""``gantricks sample``: a grid of samples from a checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from gantricks.cli.common import check_counts


def add_command(sub: Any) -> None:
    p = sub.add_parser("sample", help="write a grid of samples from a checkpoint")
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="samples.png", help="output PNG (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    p.add_argument("--nrow", type=int, default=None, help="images per row (default √n)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from gantricks.run import load_models
    from gantricks.sampling import fixed_noise, generate, save_grid

    check_counts(args, "n", "nrow")
    models, config, ckpt = load_models(args.checkpoint, args.device)
    device = next(models.generator.parameters()).device
    z = fixed_noise(args.n, config.nz, args.seed, device, config.latent)
    images = generate(models.sampling_generator, z)
    path = save_grid(images, args.out, args.nrow)
    print(f"wrote {args.n} samples from {ckpt['path']} (step {ckpt['step']}) to {path}")
    return 0
