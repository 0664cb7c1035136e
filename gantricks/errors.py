"""The one exception type users see: a message that names the bad value and what is allowed."""

from __future__ import annotations

import errno as errnos
from collections.abc import Callable
from pathlib import Path
from typing import Any


class GantricksError(Exception):
    """A user-facing error. The CLI prints its message (one paragraph) and exits with status 2."""


class PluginError(GantricksError):
    """A plugin's hook raised; the message names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        self.plugin = plugin
        self.hook = hook
        super().__init__(
            f"plugin {plugin!r} failed in hook {hook}: {type(error).__name__}: {error}"
        )


class TrainingStopped(GantricksError):
    """Training stopped early (non-finite loss); a checkpoint was saved where possible."""


#: Causes of a failed write, in words, by errno: what the user has to fix.
WRITE_CAUSES = {
    errnos.ENOSPC: "no space left on the device",
    errnos.EDQUOT: "the disk quota is exceeded",
    errnos.EROFS: "the file system is read-only",
    errnos.EACCES: "permission denied",
    errnos.EPERM: "permission denied (operation not permitted)",
    errnos.EFBIG: "the file is larger than the file system or the process's size limit allows",
    errnos.EIO: "an input/output error on the device",
}


def describe_os_error(error: BaseException) -> str:
    """Why a write failed, in words, with the errno's name: ``no space left on the device
    (ENOSPC)``; for other errors the system's own words."""
    code = getattr(error, "errno", None)
    name = errnos.errorcode.get(code, "") if isinstance(code, int) else ""
    words = WRITE_CAUSES.get(code) if isinstance(code, int) else None
    if words is None:
        words = getattr(error, "strerror", None) or str(error) or type(error).__name__
        words = words[:1].lower() + words[1:]
    return f"{words} ({name})" if name else words


class WriteError(GantricksError, OSError):
    """A file or folder of the run could not be written.

    The message is one sentence: the path, the cause (no space left, read-only, permission)
    and what was kept, e.g. ``could not write runs/a/checkpoints/last.pt: no space left on
    the device (ENOSPC); checkpoints/last.pt at step 1,200 is intact``. It is an OSError
    too (with the original ``errno``), so code that catches OSError still does.

    :param kept: what is intact, as words; or a callable giving them when the message is
        first read (the trainer says what the run kept once it has stopped).
    """

    def __init__(
        self,
        path: str | Path,
        cause: BaseException | str,
        kept: str | Callable[[], str] | None = None,
        action: str = "write",
        errno: int | None = None,
    ) -> None:
        if errno is None:
            errno = getattr(cause, "errno", None)
        self.cause = cause if isinstance(cause, str) else describe_os_error(cause)
        OSError.__init__(self, errno, self.cause, str(path))
        self.path = Path(path)
        self.kept = kept
        self.action = action

    def kept_text(self) -> str:
        if callable(self.kept):
            self.kept = self.kept()  # once: it may read a checkpoint back
        return self.kept or ""

    def __str__(self) -> str:
        kept = self.kept_text()
        return f"could not {self.action} {self.path}: {self.cause}" + (f"; {kept}" if kept else "")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across processes (bench workers)
        return (WriteError, (str(self.path), self.cause, self.kept_text(), self.action, self.errno))
