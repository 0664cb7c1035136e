"""A run's folder: claimed atomically for a new run, given back if the run is refused
before its first step, found again from a checkpoint's path."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from gantricks.config import RunConfig
from gantricks.errors import WriteError


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The run folder that holds a checkpoint file."""
    p = Path(ckpt_path).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def claim_new_run_dir(config: RunConfig) -> tuple[Path, bool]:
    """An absent or empty folder for a new run, claimed by creating its ``config.json``;
    also whether the folder was made here (rather than found empty: then a refused run
    leaves the folder, which may be the user's or another claim's).

    The claim is an exclusive create, so runs started at once (a shell loop over seeds, all
    named by the same second's timestamp) get ``NAME``, ``NAME-2``, ... instead of sharing
    one folder; the file is overwritten with the run's configuration once it is resolved.
    """
    name = config.name or f"{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    base = Path(config.out_dir) / name
    path, k = base, 2
    while True:
        try:
            path.mkdir(parents=True)
            made = True
        except FileExistsError:
            made = False
        except OSError as e:  # read-only, no permission, no space: say so, not a traceback
            raise WriteError(path, e, "nothing was written", action="make the run folder") from e
        try:
            if made or not any(path.iterdir()):
                (path / "config.json").open("x").close()
                return path, made
        except FileExistsError:  # another run claimed it just now
            pass
        except FileNotFoundError:  # a refused run gave the folder back just now: try again
            continue
        except OSError as e:
            if made:
                _remove_empty(path)
            raise WriteError(path / "config.json", e, "nothing was written") from e
        path, k = base.with_name(f"{base.name}-{k}"), k + 1


def release_unused_run_dir(run_dir: Path, remove_folder: bool) -> bool:
    """Give back a new run's folder that holds nothing but its ``config.json``.

    A run refused before its first step (a plugin's check at ``train_start``, a bad option)
    would otherwise leave a folder that takes its name: a retry with the same ``--name``
    would become ``NAME-2``. Only that one file, written by this run, is removed, and the
    folder itself only when this run made it (``remove_folder``) and it is then empty:
    a folder the user made stays, and anything else written there keeps it all.
    """
    try:
        if [p.name for p in run_dir.iterdir()] != ["config.json"]:
            return False
        (run_dir / "config.json").unlink()
        if remove_folder:
            run_dir.rmdir()
    except OSError:  # gone already, or another file appeared meanwhile: keep what is left
        return False
    return True


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty after all, or not removable: leave it
        folder.rmdir()
