"""Data-parallel training across processes (torchrun), on CPU (gloo) or GPUs (NCCL).

Every rank holds the same models (same seed), the same data and the same samplers: each
step, all ranks draw the same global batch of ``batch_size × world_size`` images and latent
vectors and each takes its own contiguous slice. After each player's backward pass the
gradients are averaged across ranks with one all-reduce, so the update is the one a single
process would make on the global batch (exactly so with ``sync_bn``, which normalises with
global batch statistics). Rank 0 alone writes logs, samples and checkpoints.

The gradient all-reduce is explicit rather than torch's DistributedDataParallel wrapper:
a GAN step runs the discriminator three times (real, generated, generated again for G) with
two separate backward passes, and the generator's backward computes no discriminator
gradients, patterns DDP's reducer does not accept without a static graph.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from gantricks.errors import GantricksError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank 0 of 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # The training loop's collectives: each does nothing in a single process, so the loop
    # has no branch for it.
    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """All-reduce (mean) the gradients of ``params`` across processes."""
        if self.enabled:
            average_gradients(params, self.world_size)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of a tensor over processes (once per log window)."""
        return mean_across_ranks(values) if self.enabled else values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on any (agreeing on when to stop)."""
        return any_rank(flag, device) if self.enabled else flag


def init_from_env(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo()
    if not dist.is_initialized():
        use_nccl = device != "cpu" and torch.cuda.is_available()
        if use_nccl:
            # Before the first collective: NCCL puts a rank's tensors on the current device,
            # and every rank would otherwise still be on cuda:0.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return current()


def current() -> DistInfo:
    """The process group's view, or a single-process DistInfo."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local)


def average_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world_size)
    for g, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(synced)


def mean_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of a tensor over ranks (used once per log window)."""
    out = values.clone()
    dist.all_reduce(out)
    return out.div_(dist.get_world_size())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on any (agreeing on when to stop)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    dist.barrier()


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; ``None`` elsewhere."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def main_first(action: Callable[[], T], what: str) -> T:
    """Run ``action`` on rank 0 first (it may download or train something the others then
    find cached), then on the other ranks. If it fails on rank 0 every rank stops, with
    rank 0's reason, instead of waiting for it forever."""
    info = current()
    if not info.enabled:
        return action()
    if not info.is_main:
        failure = broadcast_object(None)
        if failure is not None:
            raise GantricksError(f"rank 0 could not {what}: {failure}")
        return action()
    try:
        result = action()
    except Exception as e:
        broadcast_object(f"{type(e).__name__}: {e}")
        raise
    broadcast_object(None)
    return result


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


_local_only = False


@contextmanager
def local_statistics() -> Iterator[None]:
    """Within this block DistributedBatchNorm2d uses this process's batch alone: sampling
    on rank 0 (previews, evaluation) must not wait on a collective the others never join."""
    global _local_only
    previous, _local_only = _local_only, True
    try:
        yield
    finally:
        _local_only = previous


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the global batch of all ranks; works with gloo (CPU) and NCCL.

    Per-channel sums, sums of squares and counts are all-reduced by a differentiable sum
    (its backward all-reduces the gradients), so gradients flow through the global
    statistics exactly as through a single process's batch norm on the combined batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _local_only or not dist.is_initialized():
            return super().forward(x)
        c = x.shape[1]
        # Statistics in fp32 under bf16 autocast (fp64 kept): sums and counts stay exact.
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        count = torch.full((1,), x.numel() / c, dtype=xf.dtype, device=x.device)
        packed = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)), count])
        packed = _AllReduceSum.apply(packed)
        total = packed[-1]
        mean = packed[:c] / total
        var = (packed[c : 2 * c] / total - mean.square()).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), m)
                unbiased = var.detach() * total / (total - 1)
                self.running_var.lerp_(unbiased, m)
                self.num_batches_tracked.add_(1)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> int:
    """Swap every plain BatchNorm2d under ``module`` for a DistributedBatchNorm2d (in place,
    parameters and running statistics kept); return how many were swapped."""
    count = 0
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = DistributedBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            ).to(child.weight.device if child.affine else "cpu")
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
            count += 1
        else:
            count += convert_batchnorm(child)
    return count
