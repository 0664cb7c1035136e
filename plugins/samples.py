"""Sample grids as PNG files in the run folder's samples/."""

from __future__ import annotations

from pydantic import Field

from gantricks import Plugin, PluginConfig, Trainer, hookimpl, save_grid


class Config(PluginConfig):
    every: int = Field(500, ge=0, description="steps between grids (0: only at the end)")
    n: int = Field(64, gt=0, description="images per grid, from fixed latent vectors")


class Samples(Plugin):
    """Sample grids as PNG files in the run folder's samples/."""

    Config = Config
    main_process_only = True

    def _save(self, trainer: Trainer, step: int) -> None:
        path = trainer.run_dir / "samples" / f"step_{step:07d}.png"
        save_grid(trainer.preview(self.config.n), path)

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        if self.every(self.config.every, step):
            self._save(trainer, step)

    @hookimpl
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        done = self.every(self.config.every, trainer.step)
        if reason in ("completed", "interrupted") and not done:
            self._save(trainer, trainer.step)
