"""The players' optimisers: Adam as the DCGAN paper sets it, fused where torch can."""

from __future__ import annotations

from typing import Any

import torch

from gantricks.config import RunConfig


def adam_settings(config: RunConfig, lr: float, capturable: bool) -> dict[str, Any]:
    """Adam's hyperparameters from the run configuration (also re-applied on resume)."""
    betas = (config.beta1, config.beta2)
    return {"lr": lr, "betas": betas, "eps": config.adam_eps, "capturable": capturable}


def adam(
    module: torch.nn.Module, lr: float, config: RunConfig, capturable: bool = False
) -> torch.optim.Adam:
    """Fused Adam: one kernel per step, and its step counters stay on the device (the
    unfused versions read a host-side counter with .item() for every parameter).
    ``capturable``: its step may be recorded in a CUDA graph."""
    # Frozen parameters (requires_grad=False) are no optimiser's business.
    params = [p for p in module.parameters() if p.requires_grad]
    kw = adam_settings(config, lr, capturable)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError):  # devices without a fused kernel (older torch on CPU)
        return torch.optim.Adam(params, **kw)


def optimised_parameters(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter an optimiser updates, in its order."""
    return [p for group in opt.param_groups for p in group["params"]]
