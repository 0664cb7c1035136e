"""TensorBoard logging: every loss term, img/s, sample grids and the resolved config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gantricks import Trainer, hookimpl
from gantricks.config import to_json
from gantricks.sampling import image_grid


class Plugin:
    """TensorBoard logging: every loss term, img/s, sample grids and the resolved config."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        images_every: int = Field(500, ge=0, description="steps between sample grids (0: end)")
        num_images: int = Field(64, gt=0, description="images per grid")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.writer = None

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On resume, purge events logged after the checkpoint so curves do not fold back.
        self.writer = SummaryWriter(
            str(trainer.run_dir / "tb"), purge_step=trainer.step if trainer.step else None
        )
        self.writer.add_text("config", "```\n" + to_json(trainer.config) + "\n```", trainer.step)

    @hookimpl
    def gantricks_log(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        every = self.config.images_every
        if every and step % every == 0:
            self._images(trainer, step)

    def _images(self, trainer: Trainer, step: int) -> None:
        grid = image_grid(trainer.preview(self.config.num_images))
        self.writer.add_image("samples", grid, step)

    @hookimpl
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        if self.writer is None:
            return
        every = self.config.images_every
        if reason in ("completed", "interrupted") and not (every and trainer.step % every == 0):
            self._images(trainer, trainer.step)
        self.writer.close()
        self.writer = None
