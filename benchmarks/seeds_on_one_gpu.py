"""Several seeds of one `gantricks train` command in one process, one CUDA stream each.

Small models (the semi-supervised MLP GAN) leave most of a GPU idle, and separate processes
only take turns on it. Here each seed's run trains in its own thread on its own CUDA
stream, so their kernels (or replayed CUDA graphs) overlap. Every run is a normal run
folder (`RUN-seedS`), with its checkpoint, metrics.jsonl and, for semi-supervised runs,
ssl.json.

    python benchmarks/seeds_on_one_gpu.py --seeds 0 1 2 --seconds 420 --summary out.json -- \\
        --semi-supervised --labels-per-class 10 --dataset mnist --data-dir DATA \\
        --epochs 300 --device cuda --name ssl100 --set cuda_graph=true

What differs from separate runs: the runs share torch's global random generator (D's input
noise and the draw of labelled batches), so one seed's run is not bit-reproducible here.
Initial weights, the labelled subset, data order and z are still per seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from gantricks.cli import build_parser, train_options, train_plugins
from gantricks.run import prepare
from gantricks.trainer import GRAPH_WARMUP_STEPS, Trainer


def train_in_thread(trainer: Trainer, errors: dict[int, BaseException], seed: int) -> None:
    stream = torch.cuda.Stream(trainer.device) if trainer.device.type == "cuda" else None
    try:
        if stream is None:
            trainer.fit()
        else:
            with torch.cuda.stream(stream):
                trainer.fit()
    except BaseException as e:  # reported by the main thread, which decides the exit code
        errors[seed] = e


def summary_row(seed: int, trainer: Trainer, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seed": seed,
        "run": str(trainer.run_dir),
        "steps": trainer.step,
        "epochs": trainer.sampler.epochs_done,
        "seconds": seconds,
        "img_per_s": trainer.step * trainer.config.batch_size / max(seconds, 1e-9),
        "cuda_graph": trainer._graph is not None,
    }
    ssl_json = trainer.run_dir / "ssl.json"
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
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument(
        "--seconds",
        type=float,
        help="stop every run after this long, as Ctrl-C would: step finished, checkpoint saved",
    )
    p.add_argument("--summary", type=Path, help="write a JSON summary here")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then gantricks train options")
    args = p.parse_args(argv)
    train_args = [a for a in args.train_args if a != "--"]
    parser = build_parser()
    trainers: dict[int, Trainer] = {}
    for seed in args.seeds:
        targs = parser.parse_args(["train", *train_args, "--seed", str(seed)])
        if targs.name:
            targs.name = f"{targs.name}-seed{seed}"
        options = train_options(targs)
        trainers[seed], _ = prepare(options, train_plugins(targs, options))
    if torch.cuda.is_available():
        torch.cuda.synchronize()

    errors: dict[int, BaseException] = {}
    threads = {
        seed: threading.Thread(target=train_in_thread, args=(t, errors, seed), daemon=True)
        for seed, t in trainers.items()
    }
    start = time.perf_counter()
    deadline = None if args.seconds is None else start + args.seconds
    for seed, t in threads.items():
        t.start()
        # The next run starts once this one has captured its CUDA graph (or ended), so that
        # captures and the first, slow steps do not pile up.
        while t.is_alive() and trainers[seed].step <= GRAPH_WARMUP_STEPS + 1:
            time.sleep(0.05)
    try:
        while any(t.is_alive() for t in threads.values()):
            if deadline is not None and time.perf_counter() > deadline:
                for trainer in trainers.values():
                    trainer.stop_requested = True
                deadline = None
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("interrupt: every run finishes its step and saves a checkpoint", flush=True)
        for trainer in trainers.values():
            trainer.stop_requested = True
        for t in threads.values():
            t.join()
    seconds = time.perf_counter() - start

    rows = [summary_row(seed, trainers[seed], seconds) for seed in args.seeds]
    for row in rows:
        errs = (
            f"  test errors {row['test_errors']} (current D {row['test_errors_current_d']}, "
            f"best {row['best_test_errors']})"
            if "test_errors" in row
            else ""
        )
        print(
            f"seed {row['seed']}: {row['steps']} steps, {row['epochs']:.1f} epochs, "
            f"{row['img_per_s']:.0f} img/s{errs}",
            flush=True,
        )
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/seeds_on_one_gpu.py "
                    + " ".join(argv if argv is not None else sys.argv[1:]),
                    "device_name": torch.cuda.get_device_name()
                    if torch.cuda.is_available()
                    else "cpu",
                    "torch": torch.__version__,
                    "seconds": seconds,
                    "runs": rows,
                    "errors": {str(s): repr(e) for s, e in errors.items()},
                },
                indent=1,
            )
            + "\n"
        )
    for seed, e in errors.items():
        print(f"seed {seed} failed: {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
