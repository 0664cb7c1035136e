"""The base class of a gantricks plugin, and the base of its options model.

A plugin is a subclass of :class:`Plugin` with ``@hookimpl`` methods (the hooks are in
:mod:`gantricks.hookspecs`) in a module, a file or an installed package::

    from gantricks import Plugin, PluginConfig, hookimpl

    class Config(PluginConfig):
        gamma: float = 10.0

    class R1(Plugin):
        '''R1 gradient penalty on real images.'''        # the one-line description
        Config = Config
        graph_safe = True

        @hookimpl
        def gantricks_discriminator_loss(self, trainer, terms, batch):
            ...

The plugin manager makes one instance per run with the validated options in
``self.config`` (no ``__init__`` needed), registers it and checks its hook names. Plain
modules of ``@hookimpl`` functions and classes that do not derive from :class:`Plugin`
still work; this class only saves the repetition.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from gantricks.markers import hookimpl


class PluginConfig(BaseModel):
    """Base of a plugin's options model: an unknown or misspelt key stops the run before it
    starts, with an error naming the key and what is allowed."""

    model_config = ConfigDict(extra="forbid")


class Plugin:
    """Base class for plugins: options, cadence, logging and checkpointed state.

    Class attributes a plugin may set:

    - ``Config``: its options model (a :class:`PluginConfig` subclass); the validated
      options are ``self.config``.
    - ``graph_safe = True``: its step hooks do tensor work only (no Python state that
      changes per step, no host reads, randomness from torch's global generator), so a
      CUDA graph of the step may replay them (``cuda_graph = true``).
    - ``main_process_only = True``: in a multi-process run only rank 0 loads it (logging,
      saving files); other plugins run on every process.
    - ``state_attributes``: names of attributes saved in checkpoints and restored on
      resume (tensors, numbers, strings, lists or dicts of those), so ``--resume``
      continues exactly; override :meth:`state_dict`/:meth:`load_state_dict` for more.
    """

    Config: ClassVar[type[BaseModel] | None] = None
    graph_safe: ClassVar[bool] = False
    main_process_only: ClassVar[bool] = False
    state_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: BaseModel | None = None) -> None:
        if config is None and self.Config is not None:
            config = self.Config()
        self.config: Any = config

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def every(n: int, step: int) -> bool:
        """Whether ``step`` (steps completed) is a multiple of ``n``; never for ``n = 0``,
        the usual value of an ``every`` option that means "only at the end"."""
        return n > 0 and step % n == 0

    def log(self, name: str, value: float | torch.Tensor) -> None:
        """Log a scalar at the next log step (``gantricks_log``, metrics.jsonl, TensorBoard,
        the progress bar). A tensor stays on the device until then: logging one from a step
        hook costs no host read. A later value of the same name replaces an earlier one."""
        self.__dict__.setdefault("_logged", {})[name] = value

    def take_logged(self) -> dict[str, float | torch.Tensor]:
        """The values logged since the last call (the trainer collects them)."""
        logged = self.__dict__.get("_logged") or {}
        self.__dict__["_logged"] = {}
        return logged

    # -------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any] | None:
        """This plugin's checkpointed state: its ``state_attributes`` (``None``: none)."""
        if not self.state_attributes:
            return None
        out = {}
        for name in self.state_attributes:
            value = getattr(self, name)
            out[name] = value.detach().clone() if isinstance(value, torch.Tensor) else value
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values; a tensor is copied into the current one
        (keeping its device) when the shapes match."""
        for name in self.state_attributes:
            if name not in state:
                continue
            saved, current = state[name], getattr(self, name, None)
            if isinstance(current, torch.Tensor) and isinstance(saved, torch.Tensor):
                if current.shape == saved.shape:
                    with torch.no_grad():
                        current.copy_(saved)
                    continue
                saved = saved.to(current.device)
            setattr(self, name, saved)

    @hookimpl
    def gantricks_state_dict(self) -> dict[str, Any] | None:
        return self.state_dict()

    @hookimpl
    def gantricks_load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state)
