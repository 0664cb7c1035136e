"""Several seeds of one `gantricks train` command at once, one process each.

Each seed is an ordinary run (`OUT_DIR/NAME-seedS`, with its metrics.jsonl, checkpoint and,
for semi-supervised runs, ssl.json). With ``--seconds`` every run is stopped as Ctrl-C
would stop it: the step finishes, a checkpoint is saved and the semi-supervised test error
is measured on the D it stopped with. A summary of all seeds is printed and, with
``--summary``, written as JSON.

    python benchmarks/seeds.py --seeds 0 1 2 --seconds 3600 --summary ssl.json -- \\
        --semi-supervised --labels-per-class 10 --dataset mnist --data-dir DATA \\
        --epochs 300 --device cuda --name ssl100 --set cuda_graph=true

``--resume RUN…`` continues run folders instead (runs stopped by ``--seconds``, say),
stopped and summarised the same way.

Runs share the machine: on a GPU they take turns (one CUDA context each), on a CPU they
share its cores, so the seconds are shared too.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gantricks.cli import build_parser


def run_folder(train_args: list[str], seed: int) -> tuple[list[str], Path]:
    """This seed's arguments and run folder, ``OUT_DIR/NAME-seedS``.

    ``--out-dir`` and ``--name`` are passed explicitly (flags win over a config file and
    ``--set``), and a folder that already holds a run is refused: gantricks would pick
    another name for it and the summary would read the old run.
    """
    targs = build_parser().parse_args(["train", *train_args])
    if not targs.name:
        raise SystemExit("seeds.py: give the runs a --name (each seed's folder is NAME-seedS)")
    out_dir = targs.out_dir or "runs"
    name = f"{targs.name}-seed{seed}"
    folder = Path(out_dir) / name
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"seeds.py: {folder} already holds a run; choose another --name")
    return [*train_args, "--seed", str(seed), "--name", name, "--out-dir", out_dir], folder


def resumed(folder: Path, train_args: list[str]) -> tuple[int, list[str], Path]:
    """A run folder to continue: its seed (from config.json), arguments and folder."""
    config = folder / "config.json"
    if not config.is_file():
        raise SystemExit(f"seeds.py: {folder} holds no run (no config.json)")
    seed = int(json.loads(config.read_text())["seed"])
    return seed, ["--resume", str(folder), *train_args], folder


def summary_row(seed: int, run_dir: Path, exit_code: int, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "run": str(run_dir), "exit_code": exit_code}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        lines = metrics.read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        row.update(step=last.get("step"), epochs=last.get("epoch"), seconds=seconds)
    ssl_json = run_dir / "ssl.json"
    if ssl_json.is_file():
        ssl = json.loads(ssl_json.read_text())
        row.update(
            labels=ssl["labels"],
            test_errors=ssl["test_errors"],
            test_errors_current_d=ssl["test_errors_current_d"],
            evaluated_at_step=ssl["step"],
            best_test_errors=min(h["test_errors"] for h in ssl["history"]),
        )
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seeds", type=int, nargs="+", help="start one run per seed")
    which.add_argument(
        "--resume",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="continue these run folders instead (gantricks train --resume RUN, plus any "
        "train options after --), e.g. runs stopped by --seconds",
    )
    p.add_argument(
        "--seconds",
        type=float,
        help="stop every run after this long, as Ctrl-C would: step finished, checkpoint saved",
    )
    p.add_argument("--summary", type=Path, help="write a JSON summary here")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then gantricks train options")
    args = p.parse_args(argv)
    train_args = [a for a in args.train_args if a != "--"]
    if args.resume:
        runs = [resumed(folder, train_args) for folder in args.resume]
    else:
        runs = [(seed, *run_folder(train_args, seed)) for seed in args.seeds]

    start = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "gantricks", "train", *targs])
        for _, targs, _ in runs
    ]
    deadline = None if args.seconds is None else start + args.seconds
    try:
        while any(proc.poll() is None for proc in procs):
            if deadline is not None and time.perf_counter() > deadline:
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                deadline = None
            time.sleep(0.5)
    except KeyboardInterrupt:  # the runs got the same Ctrl-C: wait for their checkpoints
        for proc in procs:
            proc.wait()
    seconds = time.perf_counter() - start

    rows = [
        summary_row(seed, folder, proc.returncode, seconds)
        for (seed, _, folder), proc in zip(runs, procs, strict=True)
    ]
    for row in rows:
        errs = (
            f"  test errors {row['test_errors']} (current D {row['test_errors_current_d']}, "
            f"best {row['best_test_errors']})"
            if "test_errors" in row
            else ""
        )
        print(
            f"seed {row['seed']}: exit {row['exit_code']}, {row.get('step')} steps, "
            f"{row.get('epochs') or 0:.1f} epochs{errs}",
            flush=True,
        )
    errors = [r["test_errors"] for r in rows if "test_errors" in r]
    if len(errors) > 1:
        mean, std = statistics.mean(errors), statistics.stdev(errors)
        print(f"test errors over seeds: {mean:.1f} ± {std:.1f}")
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/seeds.py "
                    + " ".join(argv if argv is not None else sys.argv[1:]),
                    "seconds": seconds,
                    "runs": rows,
                },
                indent=1,
            )
            + "\n"
        )
    # 130 (stopped by --seconds or Ctrl-C, checkpoint saved) counts as a clean end.
    return 0 if all(r["exit_code"] in (0, 130) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
