"""Atomic checkpoint files and the checks that make a bad one fail clearly.

A checkpoint is a dict saved with ``torch.save``: format version, step, the resolved run
config, both players' and optimisers' state, RNG states, the batch sampler's state and
every plugin's state. It is written to a temporary file in the same folder, flushed to
disk and renamed over the target (:func:`gantricks.files.atomic_write`), so a crash
mid-write never leaves a truncated file and the previous checkpoint survives until the new
one is complete; a write that fails (a full disk) is a :class:`~gantricks.errors.WriteError`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from gantricks.errors import GantricksError, WriteError
from gantricks.files import atomic_write, atomic_write_text  # noqa: F401 (re-exported)

FORMAT = "gantricks-checkpoint"
VERSION = 1
LAST = "last.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically (:func:`atomic_write`): checkpoints, cached artefacts."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """Write a checkpoint ``payload`` (format header added) atomically; return the path."""
    return atomic_torch_save({"format": FORMAT, "version": VERSION, **payload}, path)


def what_is_kept(run_dir: str | Path) -> str:
    """What a run stopped by an error keeps, read back from disk: ``checkpoints/last.pt at
    step 1,200 is intact; continue with `gantricks train --resume RUN` ...``."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / LAST
    if not last.is_file():
        return "no checkpoint of this run had been saved"
    try:
        step = load(last)["step"]
    except GantricksError as e:
        return f"{last} is there but unreadable ({e})"
    return (
        f"checkpoints/{LAST} at step {step:,} is intact; once the cause is fixed, continue with "
        f"`gantricks train --resume {run_dir}`"
    )


def note_what_is_kept(error: WriteError, run_dir: str | Path) -> WriteError:
    """Make ``error`` end with what the run keeps (:func:`what_is_kept`), read back when the
    message is first shown: after the run has stopped and the checkpoint plugin has had its
    last say."""
    before = error.kept_text()

    def kept() -> str:
        run = what_is_kept(run_dir)
        return run if error.path.name == LAST or not before else f"{before}; {run}"

    error.kept = kept
    return error


def resolve(path_or_run: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/last.pt``)."""
    p = Path(path_or_run)
    if p.is_dir():
        candidate = p / "checkpoints" / LAST
        if candidate.is_file():
            return candidate
        if (p / LAST).is_file():
            return p / LAST
        raise GantricksError(
            f"{str(p)!r} is a folder without a checkpoint (looked for checkpoints/{LAST}); "
            "pass a run folder made by `gantricks train` or a .pt file"
        )
    if not p.is_file():
        raise GantricksError(f"checkpoint {str(p)!r} does not exist")
    return p


def _unreadable(path: Path, error: Exception) -> str:
    """Why torch could not read ``path``, in words that fit a damaged checkpoint.

    torch's own messages suggest ``weights_only=False`` (unsafe for a file of unknown
    origin) or run to a paragraph about its zip reader, so they are not passed on whole.
    """
    if isinstance(error, OSError):
        return f"it could not be read ({error.strerror or error})"
    try:
        if path.stat().st_size == 0:
            return "the file is empty"
        if not zipfile.is_zipfile(path):  # every gantricks checkpoint is one
            return (
                "it is not the zip archive torch.save writes (cut short, or another kind of file)"
            )
    except OSError as e:
        return f"it could not be read ({e.strerror or e})"
    if isinstance(error, pickle.UnpicklingError):
        return (
            "its contents do not read as tensors and plain values (damaged, or holding other "
            "objects, which are not loaded because unpickling them could run code)"
        )
    first = str(error).splitlines()[0] if str(error) else ""
    first = first.split(" This is an internal miniz error")[0]  # then advice, not cause
    return f"it could not be unpacked ({type(error).__name__}: {first[:200]})"


def load(path_or_run: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and sanity-check a checkpoint; errors say what is wrong with which file."""
    path = resolve(path_or_run)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise GantricksError(
            f"checkpoint {str(path)!r} is corrupt or not a checkpoint: {_unreadable(path, e)}. "
            "Use an earlier checkpoint or start a new run."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise GantricksError(f"{str(path)!r} is not a gantricks checkpoint")
    if ckpt.get("version") != VERSION:
        raise GantricksError(
            f"checkpoint {str(path)!r} has format version {ckpt.get('version')}; this "
            f"gantricks reads version {VERSION}"
        )
    ckpt["path"] = str(path)
    return ckpt


def load_module_state(module: torch.nn.Module, state: dict[str, Any], what: str, path: str) -> None:
    """``load_state_dict`` with an error that says the architectures differ and how."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        raise GantricksError(
            f"checkpoint {path!r} does not match this {what}: the architecture differs "
            f"(image size, widths, channels or plugins that change the model). {detail}"
        ) from None
