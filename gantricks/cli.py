"""``gantricks`` command line: train, plugins, sample, eval; the latent tools, ``features``
and ``bench`` live in :mod:`gantricks.cli_latent`, :mod:`gantricks.cli_features` and
:mod:`gantricks.cli_bench`."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from gantricks import __version__, cli_bench, cli_features, cli_latent
from gantricks.config import DATASETS, RunConfig, load_toml, merge, parse_sets
from gantricks.errors import GantricksError, TrainingStopped
from gantricks.plugin_manager import DEFAULT_PLUGINS, plugin_list
from gantricks.trainer import DEFAULT_EPOCHS

# command-line flag -> core option (only flags the user actually gave are applied)
_TRAIN_FLAGS = {
    "dataset": "dataset", "data_dir": "data_dir", "image_size": "image_size",
    "batch_size": "batch_size", "steps": "steps", "epochs": "epochs", "seed": "seed",
    "device": "device", "name": "name", "out_dir": "out_dir", "log_every": "log_every",
}  # fmt: skip


#: The paper's MNIST settings, as its released code has them: Adam with learning rate 0.003
#: and batches of 100; feature matching as the mean over features of the squared
#: difference of means; and Adam's ε, which that code adds *inside* the square root
#: (√(v̂ + 1e-8)), approximated by ε = 1e-4 outside it (within a factor √2 everywhere).
#: The last two together keep G's steps small when its gradients are: without them G
#: collapsed after 10-13 epochs in the runs tried, D then separating real from generated
#: perfectly (benchmarks/RESULTS.md, "Semi-supervised MNIST").
SEMI_SUPERVISED_PRESET: dict[str, Any] = {
    "lr_d": 0.003,
    "lr_g": 0.003,
    "batch_size": 100,
    "adam_eps": 1e-4,
    "feature_matching": {"norm": "mse"},
}


def _add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="sets", help=help
    )


def _default(field: str) -> Any:
    """A core option's default, for help texts."""
    return RunConfig.model_fields[field].default


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a DCGAN with plugins",
        description="Train a DCGAN (Radford et al. 2015). With no arguments: the embedded "
        "'glyphs' dataset, offline, a few minutes on a laptop CPU.",
    )
    p.add_argument(
        "--plugins",
        action="append",
        metavar="LIST",
        help="comma-separated plugins: names, module paths or ./file.py; "
        f"no:NAME removes a default ({', '.join(DEFAULT_PLUGINS)}); with --resume, a list "
        "of only no:NAME entries removes those from the run's plugins",
    )
    _add_set(p, "set an option: steps=2000, or minibatch.kernels=50 with --plugins minibatch")
    p.add_argument("--config", metavar="TOML", help="TOML file of options")
    p.add_argument(
        "--resume",
        metavar="RUN_OR_CKPT",
        help="continue a run from its folder or a checkpoint file; options left out keep "
        "the run's values (the defaults below are for new runs)",
    )
    p.add_argument("--dataset", choices=DATASETS, help=f"default: {_default('dataset')}")
    p.add_argument(
        "--data-dir",
        help=f"folder holding (or receiving) the dataset (default: {_default('data_dir')})",
    )
    p.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        default=None,
        help="never try to download a missing dataset",
    )
    p.add_argument("--image-size", type=int, help="28, 32, 64, ... (default: native size)")
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"default: {_default('batch_size')} (100 with --semi-supervised)",
    )
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help="number of D+G updates")
    steps.add_argument(
        "--epochs", type=float, help=f"alternative to --steps (default: {DEFAULT_EPOCHS:g})"
    )
    p.add_argument("--seed", type=int, help=f"default: {_default('seed')}")
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
        help=f"steps between logged losses (default: {_default('log_every')})",
    )
    ssl = p.add_argument_group(
        "semi-supervised (Salimans et al. 2016, section 5)",
        "K+1-class discriminator, supervised on a labelled subset, generator by feature "
        "matching; test error logged as ssl/test_errors. Presets, which any option you "
        "give overrides: lr_d=0.003, lr_g=0.003, batch_size=100, adam_eps=1e-4, "
        "feature_matching.norm=mse.",
    )
    ssl.add_argument(
        "--semi-supervised",
        action="store_true",
        help="add the semi_supervised and feature_matching plugins, with the paper's settings",
    )
    ssl.add_argument(
        "--labels-per-class",
        type=int,
        metavar="N",
        help="labelled examples per class (default 10: 100 labels on MNIST)",
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
        if not args.semi_supervised:
            raise GantricksError("--labels-per-class needs --semi-supervised")
        options = merge(options, {"semi_supervised": {"labels_per_class": args.labels_per_class}})
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
    return plugins + [p for p in ("semi_supervised", "feature_matching") if p not in plugins]


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


def _add_plugins(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list available plugins and their options")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    from gantricks.plugin_manager import DEFAULT_PLUGINS, available, load_plugin
    from gantricks.trainer import graph_safety

    for name, ep in available().items():
        try:
            plugin = load_plugin(name)
        except GantricksError as e:
            print(f"{name}  [failed to load: {e}]")
            continue
        tag = " (on by default; no:" + name + " removes it)" if name in DEFAULT_PLUGINS else ""
        print(f"{name}{tag}\n    {plugin.description}\n    from {ep.value}")
        safe = graph_safety(plugin.factory or plugin.module)
        if safe is not None:
            graph = "its step hooks are replayed" if safe else "turns it off (not graph_safe)"
            print(f"    cuda_graph: {graph}")
        for key, default, desc in plugin.options_help():
            print(f"    --set {name}.{key}={default}" + (f"  {desc}" if desc else ""))
    print("\nAlso accepted by --plugins: a module path (mypkg.trick) or a file (./my_trick.py).")
    return 0


def _add_sample(sub: Any) -> None:
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

    if args.n <= 0:
        raise GantricksError(f"--n must be a positive number of samples, got {args.n}")
    models, config, ckpt = load_models(args.checkpoint, args.device)
    device = next(models.generator.parameters()).device
    z = fixed_noise(args.n, config.nz, args.seed, device, config.latent)
    images = generate(models.generator, z)
    path = save_grid(images, args.out, args.nrow)
    print(f"wrote {args.n} samples from {ckpt['path']} (step {ckpt['step']}) to {path}")
    return 0


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="score a checkpoint: Inception Score, FID, KID, classifier score",
        description="Score a checkpoint's generator. The Inception Score follows Salimans et "
        "al. (2016): the 2015-12-05 Inception network, 50,000 samples, 10 contiguous splits.",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT")
    p.add_argument("--metrics", default="is", help="comma-separated: is, fid, kid, classifier")
    p.add_argument("--num-samples", type=int, default=50_000)
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    p.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="torch-fidelity's pt_inception-2015-12-05-6726825d.pth (offline use)",
    )
    p.add_argument(
        "--reference-samples",
        type=int,
        default=50_000,
        help="training images for the FID/KID reference statistics",
    )
    p.add_argument("--data-dir", help="dataset folder (default: the one the run used)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", help="folder for eval JSON/markdown (default: RUN/eval)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from gantricks.metrics.evaluate import EvalSettings, Evaluator, markdown, scalars, write_outputs
    from gantricks.run import load_models, run_dir_of
    from gantricks.trainer import resolve_device

    settings = EvalSettings(
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        num_samples=args.num_samples,
        splits=args.splits,
        batch_size=args.batch_size,
        seed=args.seed,
        inception_weights=args.inception_weights,
        reference_samples=args.reference_samples,
    )
    settings.check()
    device = resolve_device(args.device)
    models, config, ckpt = load_models(args.checkpoint, str(device))
    evaluator = Evaluator(
        settings,
        config.dataset,
        args.data_dir or config.data_dir,
        ckpt["image_size"],
        device,
        download=config.download,
    )
    result = evaluator.evaluate(models.generator, config.nz, latent=config.latent)
    assert result is not None  # one process: always the full result
    result.update(checkpoint=ckpt["path"], step=ckpt["step"])
    run_dir = run_dir_of(ckpt["path"])
    is_run = (run_dir / "config.json").is_file()
    out = Path(args.out) if args.out else run_dir / "eval"
    js, md = write_outputs(result, out, stem=f"step_{ckpt['step']:07d}")
    print(markdown(result, title=f"Evaluation of {ckpt['path']}"))
    print(f"wrote {js} and {md}")
    if is_run and (run_dir / "tb").is_dir():
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(run_dir / "tb")) as writer:
            for name, value in scalars(result).items():
                writer.add_scalar(name, value, ckpt["step"])
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line, like gantricks' other errors (the full
    usage, a dozen lines, is what ``--help`` is for)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gantricks",
        description="DCGAN training with the Improved-GAN tricks as plugins.",
    )
    parser.add_argument("--version", action="version", version=f"gantricks {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_plugins(sub)
    _add_sample(sub)
    _add_eval(sub)
    cli_bench.add_command(sub)
    cli_latent.add_commands(sub)
    cli_features.add_command(sub)
    return parser


def _format_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    """A warning as one line a user reads, not Python's file:line and source excerpt."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"gantricks: warning{kind}: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    library_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # the command line's, not the library's
    try:
        return int(args.func(args) or 0)
    except TrainingStopped as e:
        print(f"gantricks: {e}", file=sys.stderr)
        return 1
    except GantricksError as e:
        print(f"gantricks: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gantricks: stopped", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = library_format


if __name__ == "__main__":
    sys.exit(main())
