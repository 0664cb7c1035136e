"""``gantricks train``: options from a TOML file, ``--set`` and flags; a new run or a
resumed one."""

from __future__ import annotations

import argparse
from typing import Any

from gantricks.cli.common import add_no_download, add_set, default
from gantricks.config import DATASETS, load_toml, merge, parse_sets
from gantricks.models import MODELS
from gantricks.plugin_manager import DEFAULT_PLUGINS, plugin_list
from gantricks.train.loop import DEFAULT_EPOCHS

# command-line flag -> core option (only flags the user actually gave are applied)
_TRAIN_FLAGS = {
    "dataset": "dataset", "data_dir": "data_dir", "image_size": "image_size",
    "batch_size": "batch_size", "steps": "steps", "epochs": "epochs", "seed": "seed",
    "device": "device", "name": "name", "out_dir": "out_dir", "log_every": "log_every",
    "model": "model",
}  # fmt: skip


#: The paper's MNIST settings, as its released code has them: its MLPs, 10 labels per class,
#: Adam with learning rate 0.003 and batches of 100; feature matching as the mean over
#: features of the squared
#: difference of means; and Adam's ε, which that code adds *inside* the square root
#: (√(v̂ + 1e-8)), approximated by ε = 1e-4 outside it (within a factor √2 everywhere).
#: The last two together keep G's steps small when its gradients are: without them G
#: collapsed after 10-13 epochs in the runs tried, D then separating real from generated
#: perfectly (benchmarks/RESULTS.md, "Semi-supervised MNIST").
SEMI_SUPERVISED_PRESET: dict[str, Any] = {
    "model": "improved-gan-mlp",
    "labels": {"labels_per_class": 10},
    "lr_d": 0.003,
    "lr_g": 0.003,
    "batch_size": 100,
    "adam_eps": 1e-4,
    "feature_matching": {"norm": "mse"},
}


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a GAN (DCGAN by default) with plugins",
        description="Train a GAN: DCGAN (Radford et al. 2015) unless --model says otherwise. "
        "With no arguments: the embedded 'glyphs' dataset, offline, a few minutes on a "
        "laptop CPU.",
    )
    p.add_argument(
        "--plugins",
        action="append",
        metavar="LIST",
        help="comma-separated plugins: names, module paths or ./file.py; "
        f"no:NAME removes a default ({', '.join(DEFAULT_PLUGINS)}); with --resume, a list "
        "of only no:NAME entries removes those from the run's plugins",
    )
    add_set(p, "set an option: steps=2000, or minibatch.kernels=50 with --plugins minibatch")
    p.add_argument(
        "--model",
        help=f"the networks: {', '.join(MODELS)}, or one an installed package registers "
        f"(default: {default('model')})",
    )
    p.add_argument("--config", metavar="TOML", help="TOML file of options")
    p.add_argument(
        "--resume",
        metavar="RUN_OR_CKPT",
        help="continue a run from its folder or a checkpoint file; options left out keep "
        "the run's values (the defaults below are for new runs)",
    )
    p.add_argument("--dataset", choices=DATASETS, help=f"default: {default('dataset')}")
    p.add_argument(
        "--data-dir",
        help=f"folder holding (or receiving) the dataset (default: {default('data_dir')})",
    )
    add_no_download(p)
    p.add_argument("--image-size", type=int, help="28, 32, 64, ... (default: native size)")
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"default: {default('batch_size')} (100 with --semi-supervised)",
    )
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help="number of D+G updates")
    steps.add_argument(
        "--epochs", type=float, help=f"alternative to --steps (default: {DEFAULT_EPOCHS:g})"
    )
    p.add_argument("--seed", type=int, help=f"default: {default('seed')}")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="default: auto (a GPU when there is one)",
    )
    p.add_argument("--name", help="run folder name (default: DATASET-TIMESTAMP)")
    p.add_argument("--out-dir", help="parent folder of runs (default: runs)")
    p.add_argument(
        "--log-every",
        type=int,
        help=f"steps between logged losses (default: {default('log_every')})",
    )
    ssl = p.add_argument_group(
        "semi-supervised (Salimans et al. 2016, section 5)",
        "K+1-class discriminator (the labels plugin), supervised on a labelled subset, "
        "generator by feature matching; test error logged as ssl/test_errors. Presets, "
        "which any option you give overrides: model=improved-gan-mlp, "
        "labels.labels_per_class=10, lr_d=0.003, lr_g=0.003, batch_size=100, "
        "adam_eps=1e-4, feature_matching.norm=mse.",
    )
    ssl.add_argument(
        "--semi-supervised",
        action="store_true",
        help="add the labels and feature_matching plugins, with the paper's MNIST settings",
    )
    ssl.add_argument(
        "--labels-per-class",
        type=int,
        metavar="N",
        help="labelled examples per class for the labels plugin (--semi-supervised: 10, "
        "100 labels on MNIST; --plugins labels: every label)",
    )
    p.set_defaults(func=cmd_train)


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Merge TOML file, --set and explicit flags (later wins)."""
    options: dict[str, Any] = load_toml(args.config) if args.config else {}
    options = merge(options, parse_sets(args.sets))
    flags = {key: getattr(args, attr) for attr, key in _TRAIN_FLAGS.items()}
    if args.download is not None:
        flags["download"] = args.download
    if flags.get("steps") is not None:
        options.pop("epochs", None)
    if flags.get("epochs") is not None:
        options.pop("steps", None)
    if getattr(args, "labels_per_class", None) is not None:
        options = merge(options, {"labels": {"labels_per_class": args.labels_per_class}})
    if getattr(args, "semi_supervised", False) and not args.resume:
        # Presets start a run; a resumed run keeps the settings it was started with.
        options = merge(SEMI_SUPERVISED_PRESET, options)
    return merge(options, {k: v for k, v in flags.items() if v is not None})


def train_plugins(args: argparse.Namespace, options: dict[str, Any]) -> list[str] | None:
    """--plugins (else the config file's list), plus what --semi-supervised brings. A resumed
    run keeps its checkpoint's plugins unless --plugins is given."""
    plugins = None if args.plugins is None else plugin_list(args.plugins)
    if not getattr(args, "semi_supervised", False) or args.resume:
        return plugins
    plugins = plugin_list(plugins if plugins is not None else options.get("plugins") or [])
    return plugins + [p for p in ("labels", "feature_matching") if p not in plugins]


def cmd_train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from gantricks.run import prepare

    options = train_options(args)
    trainer, ckpt = prepare(options, train_plugins(args, options), args.resume)
    world = trainer.dist.world_size
    if trainer.dist.is_main:
        print(
            f"gantricks: {trainer.config.dataset} {trainer.data.image_size}px, "
            f"{len(trainer.data)} images, {trainer.total_steps} steps of batch "
            f"{trainer.config.batch_size}"
            + (f" × {world} processes" if world > 1 else "")
            + f" on {trainer.device}; plugins: {', '.join(trainer.plugins.plugins)}; "
            f"run folder {trainer.run_dir}"
            + (f"; resuming from step {ckpt['step']}" if ckpt else ""),
            flush=True,
        )
    try:
        trainer.fit(resume=ckpt)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 130 if trainer.stop_requested else 0
