"""Which device a run uses."""

from __future__ import annotations

import torch

from gantricks.errors import GantricksError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when available. Each process of a multi-GPU run takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "cuda":
        raise GantricksError(
            "--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto"
        )
    return torch.device(name)
