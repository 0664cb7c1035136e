"""``metrics.jsonl``: one JSON object per logged step, appended by rank 0."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from gantricks import checkpoint, files

NAME = "metrics.jsonl"


def append(run_dir: Path, row: dict[str, Any]) -> None:
    """Add one logged step; a failed write leaves no partial line."""
    files.append_text(run_dir / NAME, json.dumps(row) + "\n")


def trim(run_dir: Path, step: int) -> None:
    """Drop metrics.jsonl rows logged after the checkpoint a run resumes from."""
    path = run_dir / NAME
    if not path.is_file():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept, broken = [], 0
    for line in rows:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when the process was killed
            broken += 1
            continue
        if row.get("step", 0) <= step:
            kept.append(line)
    if broken:
        warnings.warn(
            f"{path}: dropped {broken} unreadable line(s), written when the run was "
            "killed mid-write",
            stacklevel=3,
        )
    if len(kept) != len(rows):
        checkpoint.atomic_write_text(path, "".join(line + "\n" for line in kept))
