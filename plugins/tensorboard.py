"""TensorBoard logging: every loss term, img/s, sample grids and the resolved config."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gantricks import Plugin, PluginConfig, Trainer, config_json, hookimpl, image_grid


class Config(PluginConfig):
    images_every: int = Field(500, ge=0, description="steps between sample grids (0: end)")
    num_images: int = Field(64, gt=0, description="images per grid")


class TensorBoard(Plugin):
    """TensorBoard logging: every loss term, img/s, sample grids and the resolved config."""

    Config = Config
    main_process_only = True
    writer: Any = None

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On resume, purge events logged after the checkpoint so curves do not fold back.
        self.writer = SummaryWriter(
            str(trainer.run_dir / "tb"), purge_step=trainer.step if trainer.step else None
        )
        self.writer.add_text(
            "config", "```\n" + config_json(trainer.config) + "\n```", trainer.step
        )

    @hookimpl
    def gantricks_log(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    @hookimpl
    def gantricks_step_end(self, trainer: Trainer, step: int) -> None:
        if self.every(self.config.images_every, step):
            self._images(trainer, step)

    def _images(self, trainer: Trainer, step: int) -> None:
        grid = image_grid(trainer.preview(self.config.num_images))
        self.writer.add_image("samples", grid, step)

    @hookimpl
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        if self.writer is None:
            return
        if reason in ("completed", "interrupted") and not self.every(
            self.config.images_every, trainer.step
        ):
            self._images(trainer, trainer.step)
        writer, self.writer = self.writer, None
        try:
            writer.close()
        except OSError:  # its event file failed (a full disk): after an error, said already
            if reason in ("completed", "interrupted"):
                raise
