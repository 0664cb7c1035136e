"""What a resumed run takes from its checkpoint, and the checks it must pass first."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from gantricks import checkpoint, files
from gantricks.config import RunConfig
from gantricks.data import ImageData
from gantricks.errors import GantricksError
from gantricks.run.folder import run_dir_of


def load(resume: str | Path, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint, the options it was saved with, as the base of this run's).

    A length given now (steps or epochs) replaces the checkpoint's, in whichever unit it
    was given; the run's name is its folder's.
    """
    ckpt = checkpoint.load(resume)
    base = dict(ckpt["config"])
    base.pop("name", None)
    if options.get("steps") is not None or options.get("epochs") is not None:
        base.pop("steps", None)
        base.pop("epochs", None)
    return ckpt, base


def check_dataset(ckpt: dict[str, Any], config: RunConfig) -> None:
    """A resumed run keeps its dataset (checked before any data loads)."""
    saved = ckpt["config"].get("dataset", config.dataset)
    if saved != config.dataset:
        raise GantricksError(
            f"checkpoint {ckpt['path']!r} was trained on dataset {saved!r}; this run asks "
            f"for {config.dataset!r}. A resumed run keeps its dataset: leave --dataset out, "
            "or start a new run."
        )


def check_images(ckpt: dict[str, Any], data: ImageData, config: RunConfig) -> None:
    """The data's image size and channels are the checkpoint's."""
    saved = (ckpt.get("image_size"), ckpt.get("channels"))
    if saved == (data.image_size, data.channels):
        return
    size, channels = saved
    if channels == data.channels:  # only the size was changed, by --image-size
        raise GantricksError(
            f"--image-size {config.image_size} does not fit checkpoint {ckpt['path']!r}, which "
            f"was trained on {channels}-channel {size}px images: resume with --image-size {size}, "
            "or leave --image-size (and image_size in --set or --config) out; a resumed run "
            "keeps its image size"
        )
    raise GantricksError(
        f"checkpoint {ckpt['path']!r} was trained on {channels}-channel {size}px images; "
        f"this run's data is {data.channels}-channel {data.image_size}px ({config.dataset}, "
        f"--image-size {config.image_size}): resume with the dataset the run was trained on"
    )


def run_dir(ckpt: dict[str, Any], warn: bool) -> Path:
    """The folder a checkpoint belongs to; resuming from an older ``step_N.pt`` warns
    (with ``warn``) that later metrics go and ``last.pt`` will be replaced."""
    folder = run_dir_of(ckpt["path"])
    latest = folder / "checkpoints" / checkpoint.LAST
    if warn and latest.is_file() and Path(ckpt["path"]).resolve() != latest.resolve():
        warnings.warn(
            f"resuming {folder} from {Path(ckpt['path']).name} (step {ckpt['step']}), "
            f"not from its last.pt: metrics logged after step {ckpt['step']} are dropped "
            "and last.pt is replaced at the next save. Copy the run folder first to keep "
            "both branches.",
            stacklevel=3,
        )
    return folder


def remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files a run killed mid-write (``kill -9`` during a checkpoint
    or sample write) left in its folder, and say so; those a still-running process is
    writing are left, and named."""
    where = [folder, *(folder / sub for sub in ("checkpoints", "samples", "eval"))]
    removed, kept = files.remove_stale_temps(where)
    names = ", ".join(str(p.relative_to(folder)) for p in removed)
    if removed:
        warnings.warn(
            f"removed {len(removed)} temporary file(s) that a run killed while writing left "
            f"in {folder}: {names}",
            stacklevel=3,
        )
    if kept:
        warnings.warn(
            f"left {len(kept)} temporary file(s) in {folder} that another process still "
            f"running may be writing: {', '.join(str(p.relative_to(folder)) for p in kept)}",
            stacklevel=3,
        )
