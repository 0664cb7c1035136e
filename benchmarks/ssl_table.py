"""Semi-supervised test errors by epoch, from runs' ``ssl.json``, as a Markdown table.

    python benchmarks/ssl_table.py runs/ssl-seed3 runs/ssl-seed4 runs/ssl-seed5 \\
        --epochs 10 20 50 100 [--class 7] [--names s3 s4 s5]

Each cell is the averaged D's errors, the current D's in brackets and, with ``--class K``,
after a slash the test images of class K misread. A column shows the last evaluation
less than an epoch before its end ("—" where there is none); the last column is the
run's last evaluation. With several runs a final row gives the mean ± sample standard deviation
of the last evaluations (and says if the runs stopped at different epochs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any


def load(path: Path) -> tuple[dict[str, Any], int]:
    """A run's ssl.json and its steps per epoch (from metrics.jsonl, else 60,000 / 100)."""
    run = path if path.is_dir() else path.parent
    ssl = json.loads((run / "ssl.json" if path.is_dir() else path).read_text())
    steps_per_epoch = 600
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if row.get("epoch"):
                steps_per_epoch = round(row["step"] / row["epoch"])
                break
    return ssl, steps_per_epoch


def cell(entry: dict[str, Any], cls: int | None) -> str:
    text = f"{entry['test_errors']:,} ({entry['current_d']:,})"
    if cls is not None and "per_class" in entry:
        text += f" / {entry['per_class'][cls]}"
    return text


def at_epoch(history: list[dict[str, Any]], step: int, per_epoch: int) -> dict[str, Any] | None:
    """The last evaluation at or before ``step`` and less than an epoch before it."""
    near = [h for h in history if step - per_epoch < h["step"] <= step]
    return near[-1] if near else None


def table(paths: list[Path], epochs: list[int], cls: int | None, names: list[str]) -> str:
    head = ["run", *map(str, epochs), "last evaluation"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    finals: list[tuple[float, int]] = []
    for path, name in zip(paths, names, strict=True):
        ssl, per_epoch = load(path)
        history = ssl["history"]
        cells = []
        for epoch in epochs:
            e = at_epoch(history, epoch * per_epoch, per_epoch)
            cells.append("—" if e is None else cell(e, cls))
        last = history[-1]
        finals.append((last["test_errors"], last["step"]))
        cells.append(f"epoch {last['step'] / per_epoch:.1f}: {cell(last, cls)}")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    if len(finals) > 1:
        errors = [e for e, _ in finals]
        same = len({s for _, s in finals}) == 1
        note = "" if same else " (runs stopped at different steps)"
        lines.append(
            f"\nmean of the last evaluations: {statistics.mean(errors):.1f} ± "
            f"{statistics.stdev(errors):.1f}{note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders or ssl.json files")
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 50, 100, 200, 300])
    p.add_argument("--class", dest="cls", type=int, help="also count this class's errors")
    p.add_argument("--names", nargs="+", help="row names (default: the folder names)")
    args = p.parse_args(argv)
    names = args.names or [(r if r.is_dir() else r.parent).name for r in args.runs]
    if len(names) != len(args.runs):
        p.error(f"--names has {len(names)} names for {len(args.runs)} runs")
    missing = [str(r) for r in args.runs if not (r / "ssl.json" if r.is_dir() else r).is_file()]
    if missing:
        p.error(f"no ssl.json in {', '.join(missing)} (not a semi-supervised run?)")
    print(table(args.runs, args.epochs, args.cls, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
