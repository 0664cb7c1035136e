"""``gantricks bench``: train and score trick combinations × seeds (:mod:`gantricks.bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from gantricks.config import DATASETS, RunConfig, parse_sets
from gantricks.errors import GantricksError


def _default(field: str) -> Any:
    """A core option's default, for help texts."""
    return RunConfig.model_fields[field].default


def _add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="sets", help=help
    )


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="train and score trick combinations × seeds; tables and plots",
        description="Train every combination of plugins for every seed, score each run and "
        "write results.csv, results.json, results.md and results.png to --out. Finished "
        "runs are skipped when the same command is run again.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--combos", help='e.g. "none; minibatch; minibatch,label_smooth; all"')
    what.add_argument("--combo-file", metavar="TOML", help="[[combo]] tables (with options)")
    what.add_argument(
        "--ablation",
        action="store_true",
        help="all five tricks, then all minus each one (the paper's table 3 is "
        "benchmarks/configs/cifar10_ablation.toml)",
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="seeds 0..N-1 per combination (default: %(default)s)"
    )
    p.add_argument("--steps", type=int, required=True, help="training steps per run")
    p.add_argument(
        "--metrics",
        default="classifier",
        help="comma list: classifier, is, fid, kid (default: %(default)s)",
    )
    p.add_argument(
        "--num-samples", type=int, default=5000, help="samples per score (default: %(default)s)"
    )
    p.add_argument("--eval-every", type=int, default=0, help="default: steps / 5")
    p.add_argument(
        "--inception-weights", metavar="PATH", help="for is, fid, kid (default: download once)"
    )
    p.add_argument("--out", required=True, help="bench folder")
    p.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once (default: %(default)s)"
    )
    p.add_argument("--dataset", choices=DATASETS, default="glyphs", help="default: %(default)s")
    p.add_argument("--data-dir", help=f"default: {_default('data_dir')}")
    p.add_argument("--batch-size", type=int, help=f"default: {_default('batch_size')}")
    p.add_argument("--image-size", type=int, help="default: the dataset's native size")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: auto")
    _add_set(p, "core options for every run, e.g. lr_g=1e-4")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from gantricks.bench import (
        BenchSpec,
        ablation_combos,
        load_combo_file,
        parse_combos,
        run_bench,
    )

    if args.seeds < 1 or args.steps < 1 or args.jobs < 1:
        raise GantricksError("--seeds, --steps and --jobs must be at least 1")
    if args.combos:
        combos = parse_combos(args.combos)
    elif args.combo_file:
        combos = load_combo_file(args.combo_file)
    else:
        combos = ablation_combos()
    base = parse_sets(args.sets)
    for key in ("dataset", "data_dir", "batch_size", "image_size", "device"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    base["steps"] = args.steps
    spec = BenchSpec(
        combos=combos,
        seeds=args.seeds,
        base=base,
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        out=Path(args.out),
        num_samples=args.num_samples,
        eval_every=args.eval_every,
        inception_weights=args.inception_weights,
        jobs=args.jobs,
        command="gantricks " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    records = run_bench(spec)
    failed = sum(r["status"] != "ok" for r in records)
    print(
        f"wrote {spec.out / 'results.md'}, results.csv, results.json, results.png"
        + (f"; {failed} run(s) failed (see results.csv)" if failed else "")
    )
    return 1 if failed == len(records) else 0
