"""Sample grids as PNG files in the run folder's samples/."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gantricks import Trainer, hookimpl
from gantricks.sampling import save_grid


class Plugin:
    """Sample grids as PNG files in the run folder's samples/."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        every: int = Field(500, ge=0, description="steps between grids (0: only at the end)")
        n: int = Field(64, gt=0, description="images per grid, from fixed latent vectors")

    def __init__(self, config: Config) -> None:
        self.config = config

    def _save(self, trainer: Trainer, step: int) -> None:
        path = trainer.run_dir / "samples" / f"step_{step:07d}.png"
        save_grid(trainer.preview(self.config.n), path)

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        if self.config.every and step % self.config.every == 0:
            self._save(trainer, step)

    @hookimpl
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        every = self.config.every
        if reason in ("completed", "interrupted") and not (every and trainer.step % every == 0):
            self._save(trainer, trainer.step)
