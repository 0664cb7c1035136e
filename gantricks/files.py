"""Writing files so that a failure never leaves half a file, and says why in one sentence.

Every file gantricks writes (checkpoints, config.json, sample grids, evaluation reports,
bench reports, the outputs of ``gantricks sample`` and the latent tools) goes through
:func:`atomic_write`: a temporary file in the same folder, flushed to disk and renamed over
the target, so a reader (or a crash) sees the old file or the new one, never a partial one.
A write that fails removes its temporary file and raises :class:`~gantricks.errors.WriteError`
(a :class:`GantricksError`, so the command line exits with status 2): the path, the cause
(no space left, read-only file system, permission) and what was kept. ``metrics.jsonl``, an
append-only log, gets :func:`append_text`: a line is either wholly written or not at all.

A process killed while writing (``kill -9``) leaves its temporary file
(``.NAME.PID.XXXXXXXX.tmp``); :func:`remove_stale_temps` removes those of processes that no
longer run, when the run resumes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from gantricks.errors import WriteError, describe_os_error

# The process's umask, read once (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)

#: A temporary file of :func:`atomic_write`: ``.NAME.PID.RANDOM.tmp`` (older gantricks
#: wrote ``.NAME.RANDOM.tmp``; mkstemp's RANDOM is 8 of [a-z0-9_]).
TEMP_NAME = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")
#: Errors that can only come from writing, even when raised inside ``write`` itself.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


class _Watched:
    """A file whose write errors are recorded: torch's zip writer turns an OSError from
    ``write`` into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``,
    which says nothing about the disk. No ``fileno``: writers then go through ``write``."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            self.error = self.error or e
            raise

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def seekable(self) -> bool:
        return self._f.seekable()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._f.closed


def _kept(path: Path) -> str:
    """What a failed write of ``path`` leaves: the file as it was, or no file."""
    try:
        if path.stat().st_size > 0:  # (an empty one is a placeholder: a new run's claim)
            return f"the existing {path.name} is unchanged"
    except OSError:
        pass
    return "no partial file was left"


def _remove(path: str | Path) -> None:
    with contextlib.suppress(OSError):  # the caller's error is the one to report
        Path(path).unlink(missing_ok=True)


def as_write_error(
    error: BaseException, where: str = "", folder: str | Path | None = None
) -> WriteError | None:
    """An OSError that only a write raises (no space, read-only file system, file too
    large), raised outside :func:`atomic_write` (a plugin's own file, TensorBoard's event
    files), as a :class:`WriteError` whose cause names ``where``; ``None`` for anything else.
    An error without a file name (a write to an open file) is placed in ``folder``."""
    if isinstance(error, WriteError):
        return error
    if not isinstance(error, OSError) or error.errno not in _DISK_ERRNOS:
        return None
    cause = describe_os_error(error) + (f", in {where}" if where else "")
    if error.filename is None and folder is not None:
        return WriteError(folder, cause, action="write a file in", errno=error.errno)
    return WriteError(error.filename or "a file", cause, errno=error.errno)


def is_write_error(error: BaseException) -> bool:
    """Whether ``error`` is a failed write (:func:`as_write_error` would convert it)."""
    return isinstance(error, WriteError) or (
        isinstance(error, OSError) and error.errno in _DISK_ERRNOS
    )


def make_dirs(folder: str | Path) -> Path:
    """``mkdir -p``; a failure (read-only, permission, no space) is a :class:`WriteError`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(folder, e, "nothing was written", action="make the folder") from e
    return folder


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` via temp file + fsync + rename: a reader (or a crash) sees the old or
    the new file, never a partial one.

    ``write(f)`` writes the contents to ``f``. An OSError while writing, flushing or
    renaming (and torch's RuntimeError that stands for one) becomes a :class:`WriteError`
    naming the path and the cause; any other exception (a bug in ``write``, a source file
    it could not read) propagates unchanged. The temporary file is removed either way,
    also on KeyboardInterrupt.
    """
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
    except OSError as e:
        raise WriteError(path, e, _kept(path)) from e
    watched: _Watched | None = None
    writing = False
    try:
        with os.fdopen(fd, "wb") as f:
            watched = _Watched(f)
            writing = True
            write(watched)  # type: ignore[arg-type]
            writing = False
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        _remove(tmp)
        if isinstance(e, Exception):
            recorded = watched.error if watched is not None else None
            if recorded is not None:
                raise WriteError(path, recorded, _kept(path)) from e
            if isinstance(e, OSError) and (not writing or e.errno in _DISK_ERRNOS):
                raise WriteError(path, e, _kept(path)) from e
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` for a text file (UTF-8)."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def append_text(path: str | Path, text: str) -> Path:
    """Append ``text`` (whole lines) to ``path``: after a failure the file is cut back to
    its earlier length, so no partial line is left (a ``kill -9`` mid-write can still
    leave one; a resumed run drops it)."""
    path = Path(path)
    data = text.encode()
    try:
        with open(path, "ab", buffering=0) as f:  # unbuffered: nothing left to flush on close
            start = f.seek(0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[f.write(view) or 0 :]
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(f.fileno(), start)
                raise
    except OSError as e:
        kept = f"{path.name} keeps its earlier lines" if path.exists() else "nothing was written"
        raise WriteError(path, e, kept) from e
    return path


def remove_stale_temps(folders: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Remove the temporary files that :func:`atomic_write` leaves when its process is
    killed mid-write; return (removed, kept). A file whose name holds the id of a process
    that still runs on this machine (another command writing into the same run, say) is
    kept; so is one that cannot be removed."""
    removed: list[Path] = []
    kept: list[Path] = []
    for folder in folders:
        try:
            entries = sorted(Path(folder).iterdir())
        except OSError:  # absent, or unreadable: nothing of ours to clean
            continue
        for p in entries:
            match = TEMP_NAME.match(p.name)
            if match is None or not p.is_file():
                continue
            pid = match.group("pid")
            if pid is not None and int(pid) != os.getpid() and _running(int(pid)):
                kept.append(p)
                continue
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:  # its writer finished just now
                pass
            except OSError:
                kept.append(p)
    return removed, kept


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True
