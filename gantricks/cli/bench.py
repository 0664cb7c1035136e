"""``gantricks bench``: train and score trick combinations × seeds (:mod:`gantricks.bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from gantricks.cli.common import add_no_download, add_set, default
from gantricks.config import DATASETS, parse_sets
from gantricks.errors import GantricksError


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="train and score trick combinations × seeds; tables and plots",
        description="Train every combination of plugins for every seed, score each run and "
        "write results.csv, results.json, results.md and results.png to --out, with each "
        "combination compared with a baseline (Welch's t, 95 %% CI, Holm's correction). "
        "Finished runs are skipped when the same command is run again; runs stopped by "
        "Ctrl-C or SIGTERM resume from their last checkpoint.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--combos",
        help='e.g. "none; minibatch; minibatch,label_smooth; all" (all: the paper\'s '
        "combination, minibatch,labels,label_smooth,virtual_batchnorm)",
    )
    what.add_argument("--combo-file", metavar="TOML", help="[[combo]] tables (with options)")
    what.add_argument(
        "--ablation",
        action="store_true",
        help="the rows of the paper's Table 3 as plugin sets (Our methods = minibatch, "
        "labels, label_smooth, virtual_batchnorm; -VBN+BN; -L+HA; -LS; -L; -MBF); with "
        "the authors' set-up: --combo-file benchmarks/configs/paper_table3.toml",
    )
    what.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rebuild the reports of --out from its results.json (the "
        "stored per-run scores), e.g. with another --baseline",
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="seeds 0..N-1 per combination (default: %(default)s)"
    )
    p.add_argument("--steps", type=int, help="training steps per run (required to train)")
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
        "--baseline",
        metavar="NAME",
        help="combination the others are compared with (default: none, if it is one of "
        "them, else the first)",
    )
    p.add_argument("--dataset", choices=DATASETS, default="glyphs", help="default: %(default)s")
    p.add_argument("--data-dir", help=f"default: {default('data_dir')}")
    add_no_download(p)
    p.add_argument("--model", help=f"the networks of every run (default: {default('model')})")
    p.add_argument("--batch-size", type=int, help=f"default: {default('batch_size')}")
    p.add_argument("--image-size", type=int, help="default: the dataset's native size")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: auto")
    add_set(p, "core options for every run, e.g. lr_g=1e-4")

    ex = p.add_argument_group(
        "where runs train",
        "local: this machine (one run at a time in this process, or worker processes); "
        "slurm: one job per run through submitit (pip install 'gantricks[slurm]'). Either "
        "way the runs are folders under --out/runs, and a second invocation picks them up.",
    )
    ex.add_argument("--executor", choices=("local", "slurm"), default="local")
    ex.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local: runs trained at once, each in its own process with cores / jobs torch "
        "threads (default: %(default)s, in this process)",
    )
    ex.add_argument(
        "--gpus",
        metavar="LIST",
        help="local: GPUs to spread runs over, e.g. 0,1 or all; each run's process sees only "
        "its GPU (CUDA_VISIBLE_DEVICES)",
    )
    ex.add_argument(
        "--runs-per-gpu",
        type=int,
        default=1,
        metavar="K",
        help="local, with --gpus: runs sharing each GPU at once (default: %(default)s)",
    )
    ex.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads of each run (default: cores / runs at once; Slurm: "
        "--slurm-cpus-per-run)",
    )
    ex.add_argument("--slurm-partition", metavar="NAME", help="default: the cluster's")
    ex.add_argument(
        "--slurm-time", type=int, default=60, metavar="MIN", help="time limit of each run's job"
    )
    ex.add_argument("--slurm-gpus-per-run", type=int, default=1, metavar="N")
    ex.add_argument("--slurm-cpus-per-run", type=int, default=4, metavar="N")
    ex.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="memory of each job")
    ex.add_argument(
        "--slurm-max-running", type=int, metavar="N", help="jobs at once (default: no cap)"
    )
    ex.add_argument(
        "--slurm-option",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more sbatch options, e.g. account=abc qos=high constraint=a100",
    )
    ex.add_argument(
        "--slurm-cluster",
        choices=("slurm", "local"),
        default="slurm",
        help="local: submitit's local executor, the same jobs as processes on this machine "
        "(tests, trying a command without a cluster)",
    )
    p.set_defaults(func=cmd_bench)


def _gpus(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip() == "all":
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise GantricksError("--gpus all: no GPU is visible")
        return [str(i) for i in range(count)]
    return [g.strip() for g in text.split(",") if g.strip()]


def _slurm_options(args: argparse.Namespace) -> Any:
    from gantricks.bench import SlurmOptions

    extra = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GantricksError(f"--slurm-option {item!r}: write KEY=VALUE, e.g. account=abc")
        extra[key.strip().replace("-", "_")] = value
    if args.slurm_time < 1 or args.slurm_cpus_per_run < 1 or args.slurm_gpus_per_run < 0:
        raise GantricksError("--slurm-time and --slurm-cpus-per-run must be at least 1")
    return SlurmOptions(
        partition=args.slurm_partition,
        time_min=args.slurm_time,
        gpus_per_run=args.slurm_gpus_per_run,
        cpus_per_run=args.slurm_cpus_per_run,
        mem_gb=args.slurm_mem_gb,
        max_running=args.slurm_max_running,
        extra=extra,
        cluster=args.slurm_cluster,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from gantricks.bench import (
        BenchInterrupted,
        BenchSpec,
        ablation_combos,
        load_combo_file,
        parse_combos,
        report_again,
        run_bench,
    )

    command = "gantricks " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.report_only:
        path = report_again(Path(args.out), args.baseline, command)
        print(f"wrote {path}, results.csv, results.json, results.png (from results.json)")
        return 0
    if not (args.combos or args.combo_file or args.ablation):
        raise GantricksError("give --combos, --combo-file or --ablation (or --report-only)")
    if args.steps is None:
        raise GantricksError("--steps is required to train")
    if args.seeds < 1 or args.steps < 1 or args.jobs < 1:
        raise GantricksError("--seeds, --steps and --jobs must be at least 1")
    if args.combos:
        combos = parse_combos(args.combos)
    elif args.combo_file:
        combos = load_combo_file(args.combo_file)
    else:
        combos = ablation_combos()
    base = parse_sets(args.sets)
    for key in ("dataset", "data_dir", "batch_size", "image_size", "device", "download", "model"):
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
        command=command,
        baseline=args.baseline,
        executor=args.executor,
        gpus=_gpus(args.gpus),
        runs_per_gpu=args.runs_per_gpu,
        threads=args.threads,
        slurm=_slurm_options(args) if args.executor == "slurm" else None,
    )
    try:
        records = run_bench(spec)
    except BenchInterrupted as e:
        print(f"gantricks: {e}", file=sys.stderr)
        return 130
    failed = sum(r["status"] != "ok" for r in records)
    print(
        f"wrote {spec.out / 'results.md'}, results.csv, results.json, results.png"
        + (f"; {failed} run(s) failed (see results.csv)" if failed else "")
    )
    return 1 if failed == len(records) else 0
