"""Shared fixtures: tiny, fast runs on the embedded glyphs dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QUIET = ["no:progress", "no:tensorboard", "no:eval"]
#: The five Improved-GAN tricks, by plugin name.
TRICKS = [
    "feature_matching",
    "minibatch",
    "historical_averaging",
    "label_smooth",
    "virtual_batchnorm",
]


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Any]:
    """Core options for a small, fast CPU run in a temporary folder."""
    return {
        "out_dir": str(tmp_path / "runs"),
        "dataset": "glyphs",
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "batch_size": 16,
        "steps": 6,
        "log_every": 2,
        "seed": 0,
        "device": "cpu",
    }


def mnist_available() -> bool:
    return (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
