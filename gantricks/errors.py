"""The one exception type users see: a message that names the bad value and what is allowed."""

from __future__ import annotations


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
