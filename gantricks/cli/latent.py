"""``gantricks interpolate``, ``arithmetic`` and ``nearest``: the DCGAN paper's latent tools."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from gantricks.cli.common import check_counts


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT")
    p.add_argument("--out", default=out, help=f"output PNG (default {out})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "interpolate",
        help="grid of linear and spherical interpolations between random z",
        description="Walk the latent space (DCGAN figure 4): each pair of random z gives a "
        "row of linear interpolation, then a row of spherical interpolation.",
    )
    _common(p, "interpolation.png")
    p.add_argument("--pairs", type=int, default=4, help="pairs of end points (default 4)")
    p.add_argument("--steps", type=int, default=10, help="images per row (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the end points")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser(
        "arithmetic",
        help="vector arithmetic on averaged z (DCGAN figure 7)",
        description="Average the z of chosen samples per concept, combine the averages "
        "(e.g. smiling_woman - neutral_woman + neutral_man) and draw the result. The "
        "indices file (TOML) names the grid the indices point at (seed, n: as "
        "`gantricks sample --seed SEED --n N` drew it; 0-based, row by row), an "
        "expression and a [groups] table, e.g. groups.smiling_woman = [3, 17, 40].",
    )
    _common(p, "arithmetic.png")
    p.add_argument("--indices", required=True, metavar="TOML", help="groups and expression")
    p.add_argument("--variations", type=int, default=8, help="result images (default 8)")
    p.add_argument(
        "--noise", type=float, default=0.25, help="uniform noise added to the result z (±)"
    )
    p.set_defaults(func=cmd_arithmetic)

    p = sub.add_parser(
        "nearest",
        help="generated samples beside their nearest training images",
        description="For each generated sample, its nearest training images in pixel space "
        "and in the discriminator's feature space: a check that the model does not copy "
        "its training set. Each row: sample | k nearest in pixels | k nearest in D features.",
    )
    _common(p, "nearest.png")
    p.add_argument("--data-dir", help="dataset folder (default: the one the run used)")
    p.add_argument("--n", type=int, default=8, help="generated samples (default 8)")
    p.add_argument("--k", type=int, default=5, help="neighbours of each kind (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="search only the first N training images",
    )
    p.set_defaults(func=cmd_nearest)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from gantricks.latent import interpolation_z, render
    from gantricks.run import load_models
    from gantricks.sampling import save_grid

    check_counts(args, "pairs", "steps")
    models, config, ckpt = load_models(args.checkpoint, args.device)
    device = next(models.generator.parameters()).device
    z = interpolation_z(config.nz, args.pairs, args.steps, args.seed, config.latent).to(device)
    path = save_grid(
        render(models.sampling_generator, z, kind=config.latent), args.out, nrow=args.steps
    )
    print(
        f"wrote {args.pairs} pairs × (linear row, spherical row) of {args.steps} images from "
        f"{ckpt['path']} (step {ckpt['step']}) to {path}"
    )
    return 0


def cmd_arithmetic(args: argparse.Namespace) -> int:
    from gantricks.latent import Arithmetic, arithmetic_z, render
    from gantricks.run import load_models
    from gantricks.sampling import save_grid

    check_counts(args, "variations")
    request = Arithmetic.from_toml(args.indices)
    models, config, ckpt = load_models(args.checkpoint, args.device)
    device = next(models.generator.parameters()).device
    exemplars, means, results = arithmetic_z(
        request, config.nz, args.variations, args.noise, config.latent
    )
    z = torch.cat([exemplars, means, results]).to(device)
    images = render(models.sampling_generator, z, kind=config.latent).cpu()
    ex_img, rest = images[: len(exemplars)], images[len(exemplars) :]
    mean_img, result_img = rest[: len(means)], rest[len(means) :]
    # One row per term: its exemplars, blanks, then the image of the group's mean z;
    # the last row: the result and its noisy variations.
    sizes = [len(request.groups[name]) for _, name in request.terms]
    width = max(max(sizes) + 1, args.variations)
    blank = torch.full_like(images[:1], -1.0)
    rows, start = [], 0
    for i, size in enumerate(sizes):
        row = [ex_img[start : start + size], blank.expand(width - size - 1, -1, -1, -1)]
        rows += [*row, mean_img[i : i + 1]]
        start += size
    rows += [result_img, blank.expand(width - args.variations, -1, -1, -1)]
    path = save_grid(torch.cat(rows), args.out, nrow=width)
    print(
        f"{request.expression}: rows of exemplars (mean on the right), then the result and "
        f"{args.variations - 1} variations; from {ckpt['path']} (step {ckpt['step']}), "
        f"indices into `gantricks sample --seed {request.seed} --n {request.n}`; wrote {path}"
    )
    return 0


def cmd_nearest(args: argparse.Namespace) -> int:
    from gantricks.data import load_dataset
    from gantricks.files import atomic_write_text
    from gantricks.latent import nearest_rows, render
    from gantricks.run import load_models
    from gantricks.sampling import fixed_noise, save_grid

    check_counts(args, "n", "k", "max_train")
    models, config, ckpt = load_models(args.checkpoint, args.device)
    device = next(models.generator.parameters()).device
    data = load_dataset(
        config.dataset,
        args.data_dir or config.data_dir,
        ckpt["image_size"],
        train=True,
        download=config.download,
    )
    train = data.images[: args.max_train] if args.max_train else data.images
    z = fixed_noise(args.n, config.nz, args.seed, device, config.latent)
    samples = render(models.sampling_generator, z, kind=config.latent)
    rows, pix, feat = nearest_rows(samples, train, models.discriminator, args.k)
    path = save_grid(rows, args.out, nrow=2 * args.k + 1)
    atomic_write_text(
        path.with_suffix(".json"),
        json.dumps(
            {
                "checkpoint": str(ckpt["path"]),
                "step": ckpt["step"],
                "dataset": config.dataset,
                "train_images_searched": len(train),
                "pixel_neighbours": pix.tolist(),
                "feature_neighbours": feat.tolist(),
            },
            indent=1,
        ),
    )
    print(
        f"wrote {args.n} samples, each with its {args.k} nearest of {len(train)} "
        f"{config.dataset} training images in pixels, then in D features, to {path} "
        f"(indices in {path.with_suffix('.json')})"
    )
    return 0
