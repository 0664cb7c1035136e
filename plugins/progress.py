"""Console progress bar: step, img/s and the latest losses."""

from __future__ import annotations

from tqdm.auto import tqdm

from gantricks import Plugin, Trainer, hookimpl


class Progress(Plugin):
    """Console progress bar: step, img/s and the latest losses."""

    main_process_only = True

    def __init__(self) -> None:
        super().__init__()
        self.bar: tqdm | None = None

    @hookimpl
    def gantricks_train_start(self, trainer: Trainer) -> None:
        self.bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.step,
            unit="step",
            dynamic_ncols=True,
            desc=trainer.run_dir.name,
            mininterval=0.5,
        )

    @hookimpl
    def gantricks_step_end(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    @hookimpl
    def gantricks_log(self, scalars: dict[str, float]) -> None:
        if self.bar is None:
            return
        shown = {"img/s": f"{scalars['img_per_s']:.0f}"}
        for key in ("loss_d", "loss_g"):
            shown[key] = f"{scalars[key]:.3f}"
        for key, value in scalars.items():
            if key.startswith("eval/") and not key.endswith("_std"):
                shown[key[5:]] = f"{value:.3g}"
        self.bar.set_postfix(shown, refresh=False)

    @hookimpl
    def gantricks_train_end(self, trainer: Trainer, reason: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        s = trainer.last_scalars
        if s:
            print(
                f"{reason} at step {trainer.step}: loss_d {s['loss_d']:.4f}, "
                f"loss_g {s['loss_g']:.4f}, {s['img_per_s']:.0f} img/s; "
                f"run folder {trainer.run_dir}",
                flush=True,
            )
