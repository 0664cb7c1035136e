"""``gantricks eval``: score a checkpoint (Inception Score, FID, KID, classifier)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gantricks.cli.common import check_counts


def add_command(sub: Any) -> None:
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
    from gantricks.device import resolve_device
    from gantricks.metrics.evaluate import EvalSettings, Evaluator
    from gantricks.metrics.report import markdown, scalars, write_outputs
    from gantricks.run import load_models, run_dir_of

    check_counts(args, "num_samples", "splits", "batch_size", "reference_samples")
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
    result = evaluator.evaluate(models.sampling_generator, config.nz, latent=config.latent)
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
