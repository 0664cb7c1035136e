"""Loss terms summed on the device between log steps, and read back in one transfer."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


class LossWindow:
    """The loss terms of every step since the last log, summed where they were computed.

    :meth:`add` costs two kernels per step (stack, add) and no host read; :meth:`read`
    averages over the window's steps and copies everything to the host at once.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # One running sum per set of term names (the same set every step, unless a plugin
        # adds a term only on some steps).
        self._sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """Add one step's named scalar losses."""
        names = tuple(losses)
        stacked = torch.stack([v.detach().reshape(()).float() for v in losses.values()])
        if names in self._sums:
            self._sums[names] += stacked
        else:
            self._sums[names] = stacked
        self.steps += 1

    def read(
        self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> tuple[dict[str, float], float]:
        """(each term's mean over the window, seconds since the window began); the window
        starts again. ``reduce`` combines the means across processes before the read."""
        names = [n for key in self._sums for n in key]
        means = torch.cat(list(self._sums.values())).div_(self.steps)
        if reduce is not None:
            means = reduce(means)
        out: dict[str, float] = {}
        for name, value in zip(names, means.tolist(), strict=True):  # the one host read
            out[name] = out.get(name, 0.0) + value
        elapsed = time.perf_counter() - self.started
        self.reset()
        return out, elapsed
