"""Historical averaging: λ‖θ − mean of past θ‖² added to each chosen player's loss."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from gantricks import GantricksError, Plugin, PluginConfig, Trainer, hookimpl


class RunningMean:
    """The mean of every value a player's parameters have taken, updated in place.

    After ``t`` recorded values θ_1..θ_t (the first at the start of training, then one after
    each of the player's updates) ``means`` holds (1/t) Σ θ_i.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.means = [p.detach().clone() for p in params]
        # The count lives on the device, so an update is pure device work (CUDA-graph safe).
        self._count = torch.ones((), device=params[0].device) if params else torch.ones(())

    @property
    def count(self) -> int:
        """How many values have been recorded (reads the device: not for the hot loop)."""
        return int(self._count)

    @torch.no_grad()
    def update(self) -> None:
        """mean ← mean + (θ − mean)/t with t the new count."""
        self._count += 1
        diffs = torch._foreach_sub([p.detach() for p in self.params], self.means)
        torch._foreach_mul_(diffs, self._count.reciprocal())
        torch._foreach_add_(self.means, diffs)

    def penalty(self) -> torch.Tensor:
        """‖θ − mean‖², summed over every parameter; its gradient is 2(θ − mean)."""
        # Multi-tensor kernels: a per-tensor loop is ~3 launches per parameter tensor, which
        # is what a GPU step at batch 128 is short of.
        norms = torch._foreach_norm(torch._foreach_sub(self.params, self.means))
        return torch.stack(norms).square().sum()

    def state_dict(self) -> dict[str, Any]:
        return {"means": [m.clone() for m in self.means], "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        means = state["means"]
        if len(means) != len(self.means) or any(
            a.shape != b.shape for a, b in zip(means, self.means, strict=True)
        ):
            raise GantricksError(
                "historical_averaging: the saved running means do not match this model's parameters"
            )
        for m, saved in zip(self.means, means, strict=True):
            m.copy_(saved)
        self._count.fill_(int(state["count"]))


class Config(PluginConfig):
    players: Literal["both", "generator", "discriminator"] = Field(
        "both", description="whose loss gets the term"
    )
    # The paper gives no λ. 0.01 from the measured grid (benchmarks/RESULTS.md, "Defaults
    # from a measured grid"): λ = 1 collapsed G to 5 classes on dcgan, 0.01 scored best.
    weight_g: float = Field(
        0.01,
        ge=0,
        description="λ for the generator (measured: RESULTS.md 'Defaults from a measured grid')",
    )
    weight_d: float = Field(
        0.01, ge=0, description="λ for the discriminator (measured, as weight_g)"
    )


class HistoricalAveraging(Plugin):
    """Historical averaging: λ‖θ − mean of past θ‖² added to each chosen player's loss.

    Salimans et al. (2016), section 3.3: each player's cost includes
    ‖θ − (1/t) Σ_{i=1..t} θ[i]‖², θ[i] being its parameters at past time i. The running
    mean is updated after each of the player's steps and saved in checkpoints.
    """

    Config = Config

    #: Step hooks are device work only: a CUDA graph of the step may replay them.
    graph_safe = True

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        self.avg: dict[str, RunningMean] = {}

    def _players(self) -> list[str]:
        p = self.config.players
        return ["generator", "discriminator"] if p == "both" else [p]

    @hookimpl(trylast=True)  # θ₁ after every plugin's data-dependent initialisation
    def gantricks_train_start(self, trainer: Trainer) -> None:
        for player in self._players():
            module = getattr(trainer, player)
            self.avg[player] = RunningMean([p for p in module.parameters() if p.requires_grad])

    @hookimpl
    def gantricks_discriminator_loss(self, terms: dict[str, torch.Tensor]) -> None:
        if "discriminator" in self.avg:
            terms["hist_avg"] = self.config.weight_d * self.avg["discriminator"].penalty()

    @hookimpl
    def gantricks_after_discriminator_step(self) -> None:
        if "discriminator" in self.avg:
            self.avg["discriminator"].update()

    @hookimpl
    def gantricks_generator_loss(self, terms: dict[str, torch.Tensor]) -> None:
        if "generator" in self.avg:
            terms["hist_avg"] = self.config.weight_g * self.avg["generator"].penalty()

    @hookimpl
    def gantricks_after_generator_step(self) -> None:
        if "generator" in self.avg:
            self.avg["generator"].update()

    def state_dict(self) -> dict[str, Any]:
        return {player: avg.state_dict() for player, avg in self.avg.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.avg):
            raise GantricksError(
                f"historical_averaging: the checkpoint averages {sorted(state)}, this run "
                f"averages {sorted(self.avg)} (option historical_averaging.players)"
            )
        for player, avg in self.avg.items():
            avg.load_state_dict(state[player])
