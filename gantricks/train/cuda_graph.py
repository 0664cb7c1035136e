"""``cuda_graph = true``: the training step recorded once as a CUDA graph and replayed.

A step at batch 128 is about a thousand small kernels, so on a GPU it is bound by launching
them; replaying a graph launches them all at once. :class:`CudaGraphStep` wraps a step with
the same call and return value: a few eager warm-up steps on a side stream (cuDNN's
autotuning, lazy initialisation, the optimisers' state), then one capture, then replays
with the new batch copied into the graph's input tensors. Only kernels are replayed: the
Python in the step (plugins' step hooks included) runs once, at capture.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from gantricks.errors import GantricksError
from gantricks.hookspecs import STEP_HOOKS
from gantricks.train import schedule

if TYPE_CHECKING:
    from gantricks.config import RunConfig
    from gantricks.distributed import DistInfo
    from gantricks.plugin_manager import PluginManager

#: Eager steps (on a side stream) before the training step is captured.
GRAPH_WARMUP_STEPS = 3

Step = Callable[..., dict[str, torch.Tensor]]


def graph_safety(plugin: Any) -> bool | None:
    """For a plugin (object, class or module): ``None`` if it implements no step hook,
    else whether it declares ``graph_safe = True``."""
    if not any(hasattr(plugin, hook) for hook in STEP_HOOKS):
        return None
    return bool(getattr(plugin, "graph_safe", False))


def graph_unsafe_plugins(plugins: PluginManager) -> list[str]:
    """Loaded plugins with step hooks that have not declared ``graph_safe = True``."""
    return sorted(name for name, p in plugins.plugins.items() if graph_safety(p.obj) is False)


def why_not(config: RunConfig, device: torch.device, dist: DistInfo, plugins: PluginManager) -> str:
    """Why ``cuda_graph = true`` cannot be honoured here ('' when it can)."""
    if device.type != "cuda":
        return f"the run is on {device.type}, not CUDA"
    if dist.enabled:
        return "multi-process runs average gradients outside the step"
    if schedule.decays(config):
        return "the learning-rate decay changes the rates between steps"
    unsafe = graph_unsafe_plugins(plugins)
    if unsafe:
        return (
            f"plugin(s) {', '.join(unsafe)} do per-step work in Python that a graph would not "
            "repeat (they do not declare graph_safe = True)"
        )
    return ""


class CudaGraphStep:
    """``step`` with the same call, captured after ``warmup`` eager calls and replayed.

    The returned losses are the graph's output tensors, overwritten by the next replay:
    use them before the next call (the loss window adds them at once).
    """

    def __init__(self, step: Step, device: torch.device, warmup: int = GRAPH_WARMUP_STEPS):
        self.step = step
        self.device = device
        self.warmup = warmup
        self.warm = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self._inputs: tuple[torch.Tensor, ...] = ()
        self._outputs: dict[str, torch.Tensor] = {}

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.graph is not None:
            torch._foreach_copy_(list(self._inputs), list(inputs))
            self.graph.replay()
            return self._outputs
        if self.failed:
            return self.step(*inputs)
        if self.warm < self.warmup:
            # Warm-up on a side stream, as capture requires.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                out = self.step(*inputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.warm += 1
            return out
        return self._capture(inputs)

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Record one step, then take it by replaying the graph.

        Capturing runs no kernel, so if it fails the models are as they were: the step is
        taken eagerly instead and the run continues without a graph. Some torch versions
        leave the global CUDA generator in capture mode after a failed capture; then no
        eager step can run in this process, and the run stops with an error saying so.
        """
        self._inputs = tuple(t.clone() for t in inputs)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self.step(*self._inputs)
        except Exception as e:  # capture raises many types; any of them means "no"
            self._inputs, self.failed = (), True
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            try:  # can this process still draw random numbers and run kernels?
                torch.cuda.synchronize(self.device)
                torch.randn(1, device=self.device)
            except Exception:
                raise GantricksError(
                    f"CUDA graph capture failed ({why}) and left CUDA unusable in this "
                    "process; run again without cuda_graph=true (the last checkpoint is kept)"
                ) from e
            warnings.warn(
                f"CUDA graph capture failed ({why}); training continues eagerly", stacklevel=3
            )
            return self.step(*inputs)
        self.graph, self._outputs = graph, outputs
        graph.replay()
        return outputs
