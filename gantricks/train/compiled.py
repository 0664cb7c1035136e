"""``compile = true``: the step with G and D compiled, falling back to eager exactly.

Inductor can fail at compile time or only when a compiled backward first runs, which may
be after the discriminator's update of that step. :class:`CompiledStep` therefore saves
the run's state before the first compiled step; if that step fails, it undoes the
compilation, restores the state and takes the step eagerly, so the run is exactly the one
an eager start would have given.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

Step = Callable[..., dict[str, torch.Tensor]]


class CompiledStep:
    """``step`` with the same call, ``modules`` compiled (``nn.Module.compile``).

    :param save: returns the run's whole state (models, optimisers, RNGs, plugins).
    :param restore: puts such a state back.
    """

    def __init__(
        self,
        step: Step,
        modules: Sequence[nn.Module],
        save: Callable[[], dict[str, Any]],
        restore: Callable[[dict[str, Any]], None],
    ) -> None:
        self.step = step
        self.modules = list(modules)
        self.save, self.restore = save, restore
        self.first = True
        for m in self.modules:
            m.compile()

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.first:
            return self.step(*inputs)
        self.first = False
        snapshot = copy.deepcopy(self.save())
        try:
            return self.step(*inputs)
        except Exception as e:  # dynamo/inductor raise many types; any of them means "no"
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "training continues without compilation",
                stacklevel=2,
            )
            import torch._dynamo

            torch._dynamo.reset()
            for m in self.modules:
                m._compiled_call_impl = None  # undo nn.Module.compile()
            self.restore(snapshot)
            return self.step(*inputs)
